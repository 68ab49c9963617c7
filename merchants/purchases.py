"""Purchases at a merchant's till (SPEC 3.3), one at a time or in a batch: each earns at the
merchant's base rate (SPEC 2, Earn rules; campaigns, tiers and stamps come with the rules issue),
plus the operator's welcome bonus on a member's first purchase anywhere, and each is recorded
once per (merchant, external_id). Currency, lot life and welcome bonus are the economics' terms
in force for the merchant on the business day the purchase is recorded. Each function takes a
session and validated values and returns a result (`PurchaseResult`, `RefundResult`); refusals
raise. The HTTP layer (`merchants.api.points`) serialises the results with their schemas.

A purchase whose external_id was recorded before is a replay: the first result, `replayed` (the
same transaction, and the member's balance as it was right after it). The same external_id with
another member, amount, currency or `occurred_at` is `idempotency_conflict`, like an
Idempotency-Key reused with another body. `store` and `items` are validated but not kept yet,
so they do not take part in that comparison. A refund (`refund_purchase`) claws a purchase's
points back in proportion.

The batch (`record_batch`) gives each line the outcome the same line would get on its own, in
order, but works set-based: one query resolves every member, their accounts are locked once in
ascending id order, one query finds earlier purchases, and `coalition.ledger.awards` writes the
awards with one INSERT per table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coalition import clock, economics
from coalition.database import Hot, table
from coalition.errors import CoalitionError, IdempotencyConflict, NotFound
from coalition.ledger import operations, reads
from coalition.ledger.accounts import Issuers, issuer_columns, issuers_from, lock_member_accounts
from coalition.ledger.awards import Award, award_many
from coalition.ledger.models import Transaction
from coalition.ledger.reads import balances_after
from coalition.ledger.rows import Actor
from coalition.members import tiers
from coalition.members.services import (
    FoundMember,
    MemberLock,
    find_members,
    member_of_account,
)
from merchants.models import Merchant

merchants = table(Merchant)
transactions = table(Transaction)

# A batch that loses a race for an external_id to another request is retried (TIGER_STYLE: a
# bound on every retry); the retry sees the other request's purchase and replays it.
BATCH_ATTEMPTS = 3
EXTERNAL_ID_CONSTRAINT = "uq_transactions_external_id"


class UnsupportedCurrency(CoalitionError):
    status, code, title = 422, "unsupported_currency", "Currency not supported"


@dataclass(frozen=True)
class Money:
    amount: int  # in minor units of `currency`
    currency: str


@dataclass(frozen=True)
class MemberState:
    """The member as a result shows it: `available` (its balance less its holds) where the
    operation counts holds."""

    id: str
    balance: int
    tier: str
    available: int | None = None


@dataclass(frozen=True)
class Earn:
    """A purchase's transaction: its points, in SPEC 3.3's five parts."""

    id: str
    points: int
    breakdown: dict[str, int]
    type: ClassVar[str] = "earn"


@dataclass(frozen=True)
class PurchaseResult:
    """A purchase recorded, or `replayed`: recorded before under its external_id."""

    transaction: Earn
    member: MemberState
    replayed: bool = False


@dataclass(frozen=True)
class Refund:
    id: str
    purchase: str
    amount: Money
    points_clawed_back: int
    breakdown: dict[str, int]
    type: ClassVar[str] = "refund"


@dataclass(frozen=True)
class RefundResult:
    """A refund recorded, or `replayed`: recorded before under its return receipt."""

    transaction: Refund
    member: MemberState
    replayed: bool = False

    @property
    def points_clawed_back(self) -> int:
        return self.transaction.points_clawed_back


@dataclass(frozen=True)
class Line:
    """One validated purchase of a batch and its number there (1-based), which a later line
    repeating its external_id names."""

    number: int
    purchase: Mapping[str, Any]


# What a line of a batch comes to: the result `record_purchase` would give, or its refusal.
Outcome = PurchaseResult | CoalitionError


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


def member_state(member: FoundMember, balance: int, available: int | None = None) -> MemberState:
    return MemberState(member.public_id, balance, member.tier, available)


def purchase_result(
    transaction: Mapping[str, Any], member: FoundMember, balance: int
) -> PurchaseResult:
    """A purchase the ledger recorded (`transaction` as `award_many` gives it)."""
    earn = Earn(transaction["id"], transaction["points"], _breakdown(transaction["breakdown"]))
    return PurchaseResult(earn, member_state(member, balance))


def _replay(first: Any, member: FoundMember, balance: int) -> PurchaseResult:
    """A repeat of the purchase `first` (a row of `earlier_transactions`)."""
    earn = Earn(first.public_id, first.points, _breakdown(first.breakdown))
    return PurchaseResult(earn, member_state(member, balance), replayed=True)


def earning_columns(merchant_id: Any) -> tuple[Any, ...]:
    """The merchant's base rate and the accounts its awards are issued from, as columns (`rate`,
    `merchant_account`, `operator_account`) that a purchase reads with its member."""
    rate = select(merchants.c.base_rate).where(merchants.c.id == merchant_id).scalar_subquery()
    return (rate.label("rate"), *issuer_columns(merchant_id))


def earning_at(session: Session, merchant_id: int) -> tuple[Decimal, Issuers]:
    """What `earning_columns` says, read on its own (a batch)."""
    row = session.execute(select(*earning_columns(merchant_id))).one()
    return Decimal(row.rate), issuers_from(row, merchant_id)


# A purchase's member, locked, read with its merchant's terms (`earning_columns`): built once.
_LOCK_WITH_EARNING = MemberLock(*earning_columns(bindparam("merchant_id")))

_EARLIER = select(
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
    transactions.c.merchant_id == bindparam("merchant_id"),
    transactions.c.type == bindparam("type"),
)
# One external id (a single purchase, refund or redemption): built once.
_EARLIER_ONE = Hot(_EARLIER.where(transactions.c.external_id == bindparam("external_id")))


def earlier_transactions(
    session: Session, merchant_id: int, type: str, external_ids: Iterable[str]
) -> dict[str, Any]:
    """The merchant's transactions of `type` already recorded under these external ids."""
    wanted = sorted(set(external_ids))
    if not wanted:
        return {}
    given = {"merchant_id": merchant_id, "type": type}
    if len(wanted) == 1:
        rows = _EARLIER_ONE.rows(session.connection(), {**given, "external_id": wanted[0]})
    else:
        rows = session.execute(_EARLIER.where(transactions.c.external_id.in_(wanted)), given).all()
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
    actor: Actor,
    now: datetime,
) -> PurchaseResult:
    """One purchase (validated by `PurchaseSchema`), or the purchase recorded earlier under its
    external_id, replayed. Refusals raise: `not_found` (member),
    `unsupported_currency`, `idempotency_conflict`."""
    terms = economics.terms_at(now, merchant_id, session)
    _check_currency(purchase["currency"], terms)
    # Under the member's lock, a concurrent repeat of this external_id for this member has
    # either committed (and is found here) or waits for this one.
    member, account, earning = _LOCK_WITH_EARNING(
        session, purchase["member"], merchant_id=merchant_id
    )
    rate, issued_from = Decimal(earning.rate), issuers_from(earning, merchant_id)
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
        return _replay(first, member, balances_after(session, [first.id])[first.id])
    award = _award(purchase, member.account_id, rate, terms, now)
    try:
        [result] = award_many(
            session,
            merchant_id=merchant_id,
            awards=[award],
            actor=actor,
            now=now,
            welcome_bonus=terms.welcome_bonus,
            locked={account.id: account},
            issued_from=issued_from,
        )
    except IntegrityError as error:
        # Another member's purchase took this external_id meanwhile: a different purchase.
        if not external_id_clash(error):
            raise
        raise external_id_conflict(external_id, "another request") from error
    upgraded = tiers.after_purchases(session, [member], now, merchant_id)
    member = tiers.as_upgraded(member, upgraded)
    return purchase_result(result["transaction"], member, result["member"]["balance"])


def refund_purchase(
    session: Session,
    *,
    merchant_id: int,
    purchase_id: str,
    amount_minor: int,
    external_id: str,
    actor: Actor,
    now: datetime,
) -> RefundResult:
    """Refund `amount_minor` of the merchant's purchase `purchase_id` on the till's return
    receipt `external_id`: its points are clawed back in proportion (SPEC 2). Or the refund
    recorded earlier under that receipt for this purchase and amount, replayed (SPEC 3.3: once
    per id). Refusals raise:
    `not_found` (purchase), `refund_exceeds_purchase`, `idempotency_conflict` (the receipt
    was used for another refund)."""
    purchase = reads.merchant_transaction(session, purchase_id, merchant_id, "earn")
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
        held = reads.held_points(session, account.id, now)
        refund = Refund(
            first.public_id,
            purchase_id,
            Money(first.amount_minor, purchase.currency),
            first.points,
            first.breakdown,
        )
        state = member_state(member, balance, max(balance - held, 0))
        return RefundResult(refund, state, replayed=True)
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
    refund = Refund(
        done["id"],
        purchase_id,
        Money(done["amount_minor"], purchase.currency),
        done["points_clawed_back"],
        done["breakdown"],
    )
    return RefundResult(refund, member_state(member, state["balance"], state["available"]))


def record_batch(
    session: Session,
    *,
    merchant_id: int,
    lines: Sequence[Line],
    actor: Actor,
    now: datetime,
) -> list[Outcome]:
    """Each line's outcome, in order: what `record_purchase` would give it after the lines
    before it, a result (a repeat of an earlier line's external_id replays that line's) or a
    refusal."""
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
    actor: Actor,
    now: datetime,
) -> list[Outcome]:
    outcomes: dict[int, Outcome] = {}
    candidates: dict[int, Mapping[str, Any]] = {}
    # One look-up of the terms for the whole batch: its lines are all recorded at `now`.
    terms = economics.terms_at(now, merchant_id, session)
    for index, line in enumerate(lines):
        try:
            _check_currency(line.purchase["currency"], terms)
        except CoalitionError as refusal:
            outcomes[index] = refusal
        else:
            candidates[index] = line.purchase

    # One query for every member of the batch.
    found = find_members(session, {p["member"] for p in candidates.values()})
    purchases: dict[int, Mapping[str, Any]] = {}
    for index, purchase in candidates.items():
        if purchase["member"] in found:
            purchases[index] = purchase
        else:
            outcomes[index] = NotFound("no such member")
    live = list(purchases)
    member_of = {i: found[purchases[i]["member"]] for i in live}

    rate, issued_from = earning_at(session, merchant_id) if live else (Decimal(0), None)
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
                outcomes[index] = external_id_conflict(external_id, first.public_id)
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
                outcomes[index] = external_id_conflict(
                    external_id, f"line {lines[first_index].number}"
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
        issued_from=issued_from,
    )
    # A batch is recorded at one moment: each line shows its member's tier after the batch.
    upgraded = tiers.after_purchases(
        session, {member_of[i].account_id: member_of[i] for i in new}.values(), now, merchant_id
    )
    member_of = {i: tiers.as_upgraded(member, upgraded) for i, member in member_of.items()}
    for index, result in zip(new, results, strict=True):
        outcomes[index] = purchase_result(
            result["transaction"], member_of[index], result["member"]["balance"]
        )
    after = balances_after(session, [first.id for _, first in replays])
    for index, first in replays:
        outcomes[index] = _replay(first, member_of[index], after[first.id])
    for index, first_index in repeats:
        first_result = outcomes[first_index]
        assert isinstance(first_result, PurchaseResult)  # a line in `new`: recorded above
        outcomes[index] = replace(first_result, replayed=True)
    return [outcomes[index] for index in range(len(lines))]
