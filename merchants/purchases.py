"""Purchases at a merchant's till (SPEC 3.3), one at a time or in a batch: each earns at the
merchant's base rate (SPEC 2, Earn rules; campaigns, tiers and stamps come with the rules issue),
plus the operator's welcome bonus on a member's first purchase anywhere, and each is recorded
once per (merchant, external_id). Currency, lot life and welcome bonus are the economics' terms
in force for the merchant on the business day the purchase is recorded.

A purchase whose external_id was recorded before is a replay: `200` with the first result (the
same transaction, and the member's balance as it was right after it). The same external_id with
another member, amount, currency or `occurred_at` is `409 idempotency_conflict`, like an
Idempotency-Key reused with another body. `store` and `items` are validated but not kept yet,
so they do not take part in that comparison. A refund (`refund_purchase`) claws a purchase's
points back in proportion.

The batch (`record_batch`) gives each line the answer the same line would get on its own, in
order, but works set-based: one query resolves every member, their accounts are locked once in
ascending id order, one query finds earlier purchases, and `coalition.ledger.batch` writes the
awards with one INSERT per table."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coalition import clock, economics
from coalition.database import table
from coalition.errors import CoalitionError, IdempotencyConflict, InvalidRequest, NotFound
from coalition.ledger import operations
from coalition.ledger.accounts import lock_member, lock_member_accounts
from coalition.ledger.batch import Award, award_many, award_one
from coalition.ledger.models import Transaction
from coalition.ledger.reads import balances_after
from coalition.members.services import FoundMember, find_member, find_members, member_of_account
from coalition.web.bodies import MalformedJson, load_json
from merchants.models import Merchant
from merchants.schemas import MAX_BATCH_LINES, PurchaseSchema

merchants = table(Merchant)
transactions = table(Transaction)

# A batch that loses a race for an external_id to another request is retried (TIGER_STYLE: a
# bound on every retry); the retry sees the other request's purchase and replays it.
BATCH_ATTEMPTS = 3
EXTERNAL_ID_CONSTRAINT = "uq_transactions_external_id"

_purchase_schema = PurchaseSchema()


class UnsupportedCurrency(CoalitionError):
    status, code, title = 422, "unsupported_currency", "Currency not supported"


class BatchTooLarge(CoalitionError):
    status, code, title = 413, "batch_too_large", "Too many purchases in one batch"


@dataclass(frozen=True)
class Line:
    """One line of a batch: its number (1-based: the array index + 1, or the NDJSON line), and
    the validated purchase or the problem that refused it."""

    number: int
    purchase: dict[str, Any] | None = None
    status: int = 0
    problem: dict[str, Any] | None = None


def _check_currency(currency: str, terms: economics.Terms) -> None:
    # SPEC 2: v1 runs one settlement currency per coalition.
    if currency != terms.currency:
        raise UnsupportedCurrency(
            f"purchases are recorded in {terms.currency} only, not {currency}",
            errors={"currency": [f"must be {terms.currency}"]},
        )


def _breakdown(stored: Mapping[str, int] | None) -> dict[str, int]:
    """SPEC 3.3's five parts. A purchase written outside the API may carry the ledger's part
    names (`merchant`), which is its base here."""
    stored = stored or {}
    return {
        "base": stored.get("base", stored.get("merchant", 0)),
        "campaign": stored.get("campaign", 0),
        "tier": stored.get("tier", 0),
        "welcome": stored.get("welcome", 0),
        "stamp": stored.get("stamp", 0),
    }


def member_state(member: FoundMember, balance: int, available: int | None = None) -> dict[str, Any]:
    """The member as an answer shows it (`MemberStateSchema`, or with `available`
    `MemberAvailableSchema`)."""
    state: dict[str, Any] = {"id": member.public_id, "balance": balance, "tier": member.tier}
    if available is not None:
        state["available"] = available
    return state


def purchase_body(
    transaction: Mapping[str, Any], member: FoundMember, balance: int
) -> dict[str, Any]:
    """The answer to a purchase (schema `PurchaseResultSchema`)."""
    return {
        "transaction": {
            "id": transaction["id"],
            "type": "earn",
            "points": transaction["points"],
            "breakdown": _breakdown(transaction["breakdown"]),
        },
        "member": member_state(member, balance),
    }


def _replay_body(first: Any, member: FoundMember, balance: int) -> dict[str, Any]:
    """The answer to a repeat of the purchase `first` (a row of `earlier_transactions`)."""
    return purchase_body(
        {"id": first.public_id, "points": first.points, "breakdown": first.breakdown},
        member,
        balance,
    )


def base_rate(session: Session, merchant_id: int) -> Decimal:
    return Decimal(
        session.execute(
            select(merchants.c.base_rate).where(merchants.c.id == merchant_id)
        ).scalar_one()
    )


def earlier_transactions(
    session: Session, merchant_id: int, type: str, external_ids: Iterable[str]
) -> dict[str, Any]:
    """The merchant's transactions of `type` already recorded under these external ids."""
    wanted = sorted(set(external_ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(
            transactions.c.id,
            transactions.c.public_id,
            transactions.c.external_id,
            transactions.c.member_account_id,
            transactions.c.points,
            transactions.c.amount_minor,
            transactions.c.currency,
            transactions.c.breakdown,
            transactions.c.occurred_at,
            transactions.c.created_at,
            transactions.c.original_id,
        ).where(
            transactions.c.merchant_id == merchant_id,
            transactions.c.type == type,
            transactions.c.external_id.in_(wanted),
        )
    ).all()
    return {row.external_id: row for row in rows}


def _same_purchase(
    first_account: int,
    first_amount: int | None,
    first_currency: str | None,
    first_occurred_at: datetime | None,
    account_id: int,
    purchase: Mapping[str, Any],
) -> bool:
    """Whether a repeat of an external_id asks for what the first asked for. `occurred_at`
    counts only when the repeat gives one."""
    occurred_at = purchase.get("occurred_at")
    return (
        first_account == account_id
        and first_amount == purchase["amount"]
        and first_currency == purchase["currency"]
        and (occurred_at is None or occurred_at == first_occurred_at)
    )


def external_id_conflict(
    external_id: str, first: str, what: str = "purchase"
) -> IdempotencyConflict:
    """`409 idempotency_conflict`: `external_id` was used for a different `what` (a purchase,
    refund or redemption), `first` (its transaction id, or where it came from)."""
    detail = (
        f"external_id {external_id!r} was already used for a different {what} ({first});"
        " use a new external_id"
    )
    if first.startswith("txn_"):
        return IdempotencyConflict(detail, transaction=first)
    return IdempotencyConflict(detail)


def external_id_clash(error: IntegrityError) -> bool:
    """Whether an insert failed on the unique (merchant, type, external_id) index: another
    request recorded that external id first, after the check made under the member's lock."""
    diagnostics = getattr(error.orig, "diag", None)
    name = getattr(diagnostics, "constraint_name", None) or str(error.orig)
    return EXTERNAL_ID_CONSTRAINT in name or "external_id" in name


def _award(
    purchase: Mapping[str, Any],
    account_id: int,
    rate: Decimal,
    terms: economics.Terms,
    now: datetime,
) -> Award:
    base = economics.base_points(purchase["amount"], rate, terms)
    return Award(
        account_id=account_id,
        parts={"merchant": base},
        # SPEC 2: lots expire `expiry_months` after issue.
        expires_at=clock.add_months(now, terms.expiry_months),
        amount_minor=purchase["amount"],
        currency=purchase["currency"],
        external_id=purchase["external_id"],
        breakdown={"base": base, "campaign": 0, "tier": 0, "welcome": 0, "stamp": 0},
        occurred_at=purchase.get("occurred_at"),
    )


def record_purchase(
    session: Session,
    *,
    merchant_id: int,
    purchase: Mapping[str, Any],
    actor: operations.Actor,
    now: datetime,
) -> tuple[int, dict[str, Any]]:
    """One purchase (validated by `PurchaseSchema`): `(201, body)`, or `(200, body)` replaying
    the purchase recorded earlier under its external_id. Refusals raise: `not_found` (member),
    `unsupported_currency`, `idempotency_conflict`."""
    terms = economics.terms_at(now, merchant_id, session)
    _check_currency(purchase["currency"], terms)
    member = find_member(session, purchase["member"])
    rate = base_rate(session, merchant_id)
    # Under the member's lock, a concurrent repeat of this external_id for this member has
    # either committed (and is found here) or waits for this one.
    account = lock_member(session, member.id)
    external_id = purchase["external_id"]
    first = earlier_transactions(session, merchant_id, "earn", [external_id]).get(external_id)
    if first is not None:
        if not _same_purchase(
            first.member_account_id,
            first.amount_minor,
            first.currency,
            first.occurred_at,
            member.account_id,
            purchase,
        ):
            raise external_id_conflict(external_id, first.public_id)
        return 200, _replay_body(first, member, balances_after(session, [first.id])[first.id])
    award = _award(purchase, member.account_id, rate, terms, now)
    try:
        result = award_one(
            session,
            award,
            member=account,
            merchant_id=merchant_id,
            actor=actor,
            now=now,
            welcome_bonus=terms.welcome_bonus,
        )
    except IntegrityError as error:
        # Another member's purchase took this external_id meanwhile: a different purchase.
        if not external_id_clash(error):
            raise
        raise external_id_conflict(external_id, "another request") from error
    return 201, purchase_body(result["transaction"], member, result["member"]["balance"])


def refund_body(
    refund: Mapping[str, Any],
    purchase_id: str,
    currency: str,
    member: FoundMember,
    balance: int,
    available: int,
) -> dict[str, Any]:
    """The answer to a refund (schema `RefundResultSchema`); `refund` has the refund
    transaction's `id`, `amount_minor`, `points_clawed_back` and `breakdown`."""
    return {
        "points_clawed_back": refund["points_clawed_back"],
        "transaction": {
            "id": refund["id"],
            "type": "refund",
            "purchase": purchase_id,
            "amount": {"amount": refund["amount_minor"], "currency": currency},
            "points_clawed_back": refund["points_clawed_back"],
            "breakdown": refund["breakdown"],
        },
        "member": member_state(member, balance, available),
    }


def refund_purchase(
    session: Session,
    *,
    merchant_id: int,
    purchase_id: str,
    amount_minor: int,
    external_id: str,
    actor: operations.Actor,
    now: datetime,
) -> tuple[int, dict[str, Any]]:
    """Refund `amount_minor` of the merchant's purchase `purchase_id` on the till's return
    receipt `external_id`: its points are clawed back in proportion (SPEC 2). `(201, body)`
    (schema `RefundResultSchema`), or `(200, body)` replaying the refund recorded earlier under
    that receipt for this purchase and amount (SPEC 3.3: once per id). Refusals raise:
    `not_found` (purchase), `refund_exceeds_purchase`, `idempotency_conflict` (the receipt
    was used for another refund)."""
    purchase = operations.merchant_transaction(session, purchase_id, merchant_id, "earn")
    member = member_of_account(session, purchase.member_account_id)
    # Under the member's lock, a concurrent repeat of this receipt for this purchase has either
    # committed (and is found here) or waits for this one.
    account = lock_member_accounts(session, [purchase.member_account_id])[
        purchase.member_account_id
    ]
    first = earlier_transactions(session, merchant_id, "refund", [external_id]).get(external_id)
    if first is not None:
        if first.original_id != purchase.id or first.amount_minor != amount_minor:
            raise external_id_conflict(external_id, first.public_id, "refund")
        balance = balances_after(session, [first.id])[first.id]
        # Holds are counted as they are now: what the ledger cannot say of a past moment.
        held = operations.held_points(session, account.id, now)
        replay = {
            "id": first.public_id,
            "amount_minor": first.amount_minor,
            "points_clawed_back": first.points,
            "breakdown": first.breakdown,
        }
        return 200, refund_body(
            replay, purchase_id, purchase.currency, member, balance, max(balance - held, 0)
        )
    try:
        result = operations.refund(
            session,
            purchase_id=purchase_id,
            merchant_id=merchant_id,
            amount_minor=amount_minor,
            actor=actor,
            now=now,
            external_id=external_id,
            locked=account,
        )
    except IntegrityError as error:
        # A refund of another purchase (another member's lock) took this receipt meanwhile.
        if not external_id_clash(error):
            raise
        raise external_id_conflict(external_id, "another request", "refund") from error
    done, state = result["transaction"], result["member"]
    return 201, refund_body(
        done, purchase_id, purchase.currency, member, state["balance"], state["available"]
    )


def parse_lines(body: bytes, *, ndjson: bool) -> list[Line]:
    """A batch body, a JSON array or NDJSON (one purchase a line; blank lines skipped), as
    validated lines. A bad line becomes its own problem; the whole body is refused only when
    it cannot be split into lines (`malformed_json`, `validation_error`) or has more than
    MAX_BATCH_LINES of them (`413 batch_too_large`)."""
    raw: list[tuple[int, Any]] = []
    parsed: dict[int, Line] = {}
    if ndjson:
        numbered = [(n, text) for n, text in enumerate(body.split(b"\n"), 1) if text.strip()]
        _check_size(len(numbered))
        for number, text in numbered:
            try:
                raw.append((number, load_json(text, f"line {number}")))
            except MalformedJson as refusal:
                parsed[number] = _refused(number, refusal)
    else:
        document = load_json(body)
        if not isinstance(document, list):
            raise InvalidRequest(
                "send a JSON array of purchases, or NDJSON (application/x-ndjson)",
                errors={"_schema": ["must be a JSON array"]},
            )
        _check_size(len(document))
        raw = list(enumerate(document, 1))
    if not raw and not parsed:
        raise InvalidRequest("the batch has no purchases", errors={"_schema": ["is empty"]})
    for number, item in raw:
        try:
            purchase = _purchase_schema.load(item)
        except ValidationError as error:
            parsed[number] = _refused(
                number,
                InvalidRequest(
                    "the purchase has invalid fields; see errors",
                    errors=_printable(error.messages),
                ),
            )
        else:
            parsed[number] = Line(number, purchase=purchase)
    return [parsed[number] for number in sorted(parsed)]


def _refused(number: int, refusal: CoalitionError) -> Line:
    return Line(number, status=refusal.status, problem=refusal.problem())


def _outcome(refusal: CoalitionError) -> tuple[int, dict[str, Any]]:
    return refusal.status, refusal.problem()


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


def record_batch(
    session: Session,
    *,
    merchant_id: int,
    lines: Sequence[Line],
    actor: operations.Actor,
    now: datetime,
) -> list[dict[str, Any]]:
    """Each line's result, in order: `{"line", "status", "body"}` with the status and body the
    line would get from `POST /purchases` (after the lines before it)."""
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        savepoint = session.begin_nested()
        try:
            results = _record_batch(
                session, merchant_id=merchant_id, lines=lines, actor=actor, now=now
            )
        except IntegrityError as error:
            savepoint.rollback()
            if not external_id_clash(error):
                raise
            if attempt == BATCH_ATTEMPTS:
                raise IdempotencyConflict(
                    "other requests keep recording purchases with these external ids; retry"
                ) from error
        else:
            savepoint.commit()
            return results
    raise AssertionError("unreachable")


def _record_batch(
    session: Session,
    *,
    merchant_id: int,
    lines: Sequence[Line],
    actor: operations.Actor,
    now: datetime,
) -> list[dict[str, Any]]:
    outcomes: dict[int, tuple[int, dict[str, Any]]] = {}
    candidates: dict[int, dict[str, Any]] = {}
    # One look-up of the terms for the whole batch: its lines are all recorded at `now`.
    terms = economics.terms_at(now, merchant_id, session)
    for index, line in enumerate(lines):
        if line.purchase is None:
            outcomes[index] = (line.status, line.problem or {})
            continue
        try:
            _check_currency(line.purchase["currency"], terms)
        except CoalitionError as refusal:
            outcomes[index] = _outcome(refusal)
        else:
            candidates[index] = line.purchase

    # One query for every member of the batch.
    found = find_members(session, {p["member"] for p in candidates.values()})
    purchases: dict[int, dict[str, Any]] = {}
    for index, purchase in candidates.items():
        if purchase["member"] in found:
            purchases[index] = purchase
        else:
            outcomes[index] = _outcome(NotFound("no such member"))
    live = list(purchases)
    member_of = {i: found[purchases[i]["member"]] for i in live}

    rate = base_rate(session, merchant_id) if live else Decimal(0)
    # QUALITY: member accounts locked once, in ascending id order (the global lock order).
    locked = (
        lock_member_accounts(session, {m.account_id for m in member_of.values()}) if live else {}
    )
    earlier = earlier_transactions(
        session, merchant_id, "earn", {p["external_id"] for p in purchases.values()}
    )

    claimed: dict[str, int] = {}
    replays: list[tuple[int, Any]] = []
    repeats: list[tuple[int, int]] = []
    new: list[int] = []
    for index in live:
        purchase, member = purchases[index], member_of[index]
        external_id = purchase["external_id"]
        if external_id in earlier:
            first = earlier[external_id]
            if _same_purchase(
                first.member_account_id,
                first.amount_minor,
                first.currency,
                first.occurred_at,
                member.account_id,
                purchase,
            ):
                replays.append((index, first))
            else:
                outcomes[index] = _outcome(external_id_conflict(external_id, first.public_id))
        elif external_id in claimed:
            first_index = claimed[external_id]
            first_purchase = purchases[first_index]
            if _same_purchase(
                member_of[first_index].account_id,
                first_purchase["amount"],
                first_purchase["currency"],
                first_purchase.get("occurred_at"),
                member.account_id,
                purchase,
            ):
                repeats.append((index, first_index))
            else:
                outcomes[index] = _outcome(
                    external_id_conflict(external_id, f"line {lines[first_index].number}")
                )
        else:
            claimed[external_id] = index
            new.append(index)

    results = award_many(
        session,
        merchant_id=merchant_id,
        awards=[_award(purchases[i], member_of[i].account_id, rate, terms, now) for i in new],
        actor=actor,
        now=now,
        welcome_bonus=terms.welcome_bonus,
        locked=locked,
    )
    for index, result in zip(new, results, strict=True):
        outcomes[index] = (
            201,
            purchase_body(result["transaction"], member_of[index], result["member"]["balance"]),
        )
    after = balances_after(session, [first.id for _, first in replays])
    for index, first in replays:
        outcomes[index] = (200, _replay_body(first, member_of[index], after[first.id]))
    for index, first_index in repeats:
        outcomes[index] = (200, outcomes[first_index][1])
    return [
        {"line": line.number, "status": outcomes[i][0], "body": outcomes[i][1]}
        for i, line in enumerate(lines)
    ]
