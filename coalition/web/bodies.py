"""Request bodies. Every JSON body the API reads, whole or line by line, goes through
`load_json`, which is stricter than Python's `json.loads`: the bytes must be UTF-8, a key
may appear only once in an object (Python would keep the last one silently, where another
reader keeps the first), and an integer literal too long to convert is malformed JSON (400),
not a crash.

And one rule for every route that takes a JSON body (`check_json_body`): a body of another type
is `415` (a form's fields are never silently dropped), and no body at all is `400
malformed_json` unless the route's body is optional (`arguments(..., required=False)`)."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from coalition.errors import CoalitionError

# Python refuses to convert more digits than this (its default `sys.get_int_max_str_digits()`)
# because the conversion takes quadratic time. The bound is ours, whatever the interpreter's
# setting; no field takes a number anywhere near it, so the schemas still name a number that
# is merely too large.
MAX_INTEGER_DIGITS = 4300


class MalformedJson(CoalitionError):
    status, code, title = 400, "malformed_json", "Malformed JSON"


class UnsupportedMediaType(CoalitionError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class _TooManyDigits(Exception):
    pass


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return found


def _integer(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _TooManyDigits
    return int(literal)


def load_json(data: bytes | str, what: str = "the request body") -> Any:
    """The JSON document in `data`, or `MalformedJson` naming `what` was wrong with it."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"{what} is not UTF-8") from exc
    try:
        return json.loads(text, parse_int=_integer, object_pairs_hook=_object)
    except _DuplicateKey as exc:
        # Spelled in ASCII JSON, so a key with a NUL or a lone surrogate can still be stored.
        key = json.dumps(exc.key[:100])
        raise MalformedJson(f"{what} gives the key {key} more than once in one object") from exc
    except _TooManyDigits as exc:
        raise MalformedJson(
            f"{what} has an integer of more than {MAX_INTEGER_DIGITS} digits"
        ) from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise MalformedJson(f"{what} is not valid JSON") from exc


def check_json_body(required: bool, also: tuple[str, ...] = ()) -> None:
    """The current request's body is JSON (or one of the media types `also` names), or is
    absent where the route allows it; refused otherwise, before anything is read or written."""
    data = request.get_data(cache=True)
    if (request.mimetype or data) and not (request.is_json or request.mimetype in also):
        accepted = " or ".join(("application/json", *also))
        raise UnsupportedMediaType(f"send the body as {accepted}")
    if required and not data:
        raise MalformedJson("the request has no body; this route takes a JSON body")
