"""The purchase batch's body (SPEC 3.3), a JSON array or NDJSON of up to 1,000 purchases, read
into lines: each validated by `PurchaseSchema` into a `purchases.Line`, or refused on its own
(`validation_error`, `malformed_json`), a bad line never refusing the rest. The whole body is
refused only when it cannot be split into lines, or has too many."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError

from coalition.errors import CoalitionError, InvalidRequest
from coalition.web.api import is_plain_text
from coalition.web.bodies import MalformedJson, load_json
from merchants.purchases import Line
from merchants.schemas import (
    MAX_BATCH_LINES,
    MAX_EXTERNAL_ID,
    MAX_MEMBER_REF,
    MAX_PURCHASE_MINOR,
    PurchaseSchema,
)

_purchase_schema = PurchaseSchema()


class BatchTooLarge(CoalitionError):
    status, code, title = 413, "batch_too_large", "Too many purchases in one batch"


@dataclass(frozen=True)
class Batch:
    """A batch read: its valid lines, and the refusal of each other line by its number
    (1-based: the array index + 1, or the NDJSON line)."""

    lines: list[Line]
    refused: dict[int, CoalitionError]


def parse_lines(body: bytes, *, ndjson: bool) -> Batch:
    """A batch body, a JSON array or NDJSON (one purchase a line; blank lines skipped), as
    validated lines. A bad line becomes its own refusal; the whole body is refused only when
    it cannot be split into lines (`malformed_json`, `validation_error`) or has more than
    MAX_BATCH_LINES of them (`413 batch_too_large`)."""
    raw: list[tuple[int, Any]] = []
    refused: dict[int, CoalitionError] = {}
    if ndjson:
        numbered = [(n, text) for n, text in enumerate(body.split(b"\n"), 1) if text.strip()]
        _check_size(len(numbered))
        for number, text in numbered:
            try:
                raw.append((number, load_json(text, f"line {number}")))
            except MalformedJson as refusal:
                refused[number] = refusal
    else:
        document = load_json(body)
        if not isinstance(document, list):
            raise InvalidRequest(
                "send a JSON array of purchases, or NDJSON (application/x-ndjson)",
                errors={"_schema": ["must be a JSON array"]},
            )
        _check_size(len(document))
        raw = list(enumerate(document, 1))
    if not raw and not refused:
        raise InvalidRequest("the batch has no purchases", errors={"_schema": ["is empty"]})
    lines = []
    for number, item in raw:
        if _plainly_valid(item):
            lines.append(Line(number, dict(item)))
            continue
        try:
            purchase = _purchase_schema.load(item)
        except ValidationError as error:
            refused[number] = InvalidRequest(
                "the purchase has invalid fields; see errors", errors=_printable(error.messages)
            )
        else:
            lines.append(Line(number, purchase))
    return Batch(lines, refused)


# A till's usual line: these four fields and nothing else.
_PLAIN_FIELDS = frozenset({"member", "amount", "currency", "external_id"})
_CURRENCY = re.compile(r"[A-Z]{3}\Z")


def _plainly_valid(item: Any) -> bool:
    """Whether `item` is a line of the usual shape that `PurchaseSchema` would load unchanged:
    checked in a few comparisons, where marshmallow takes a third of a batch's CPU
    (docs/benchmarks.md, "Issue 11: the last levers"). Anything else, valid or not, goes
    through the schema, which alone words the refusals; tests/merchants/test_batch.py holds
    the two to the same answers."""
    if type(item) is not dict or item.keys() != _PLAIN_FIELDS:
        return False
    amount, currency = item["amount"], item["currency"]
    return (
        type(amount) is int
        and 1 <= amount <= MAX_PURCHASE_MINOR
        and type(currency) is str
        and _CURRENCY.match(currency) is not None
        and _plain_text(item["member"], MAX_MEMBER_REF)
        and _plain_text(item["external_id"], MAX_EXTERNAL_ID)
    )


def _plain_text(value: Any, most: int) -> bool:
    """`fields.text(most)`'s rules: 1 to `most` characters, plain, not only blanks."""
    return (
        type(value) is str
        and 0 < len(value) <= most
        and value.strip() != ""
        and is_plain_text(value)
    )


def _printable(messages: Any) -> Any:
    """Validation messages with the field names a caller sent made safe to store (JSONB holds
    neither NUL nor lone surrogates): such characters are spelled out as `\\u0000`."""
    if isinstance(messages, dict):
        return {_escape(str(key)): _printable(value) for key, value in messages.items()}
    if isinstance(messages, list):
        return [_printable(value) for value in messages]
    return messages


def _escape(name: str) -> str:
    return "".join(
        f"\\u{ord(char):04x}" if unicodedata.category(char) in ("Cc", "Cs") else char
        for char in name
    )


def _check_size(count: int) -> None:
    if count > MAX_BATCH_LINES:
        raise BatchTooLarge(
            f"a batch holds at most {MAX_BATCH_LINES} purchases, this one {count}; split it",
            limit=MAX_BATCH_LINES,
        )
