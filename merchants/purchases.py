"""Purchases at a merchant's till (SPEC 3.3), one at a time or in a batch: each earns under the
merchant's earn rules in force at its `occurred_at` (`merchants.rules`; the arithmetic is
`merchants.earning.earn`, with the member's tier multiplier as read under its lock), plus the
operator's welcome bonus on a member's first purchase anywhere, and each is recorded
once per (merchant, external_id). A capped merchant's purchase past its monthly budget is
refused (`merchants.budgets`). Currency, lot life and welcome bonus are the economics' terms
in force for the merchant on the business day the purchase is recorded. Each function takes a
session and validated values and returns a result (`PurchaseResult`, `RefundResult`); refusals
raise. The HTTP layer (`merchants.api.points`) serialises the results with their schemas.

A purchase whose external_id was recorded before is a replay: the first result, `replayed` (the
same transaction, and the member's balance as it was right after it). The same external_id with
another member, amount, currency, `occurred_at`, `store` or `items` is
`idempotency_conflict`, like an Idempotency-Key reused with another body (a purchase recorded
before stores and items were kept matches any). A refund (`refund_purchase`) claws a purchase's
points back in proportion.

The batch (`record_batch`) gives each line the outcome the same line would get on its own, in
order, but works set-based: one query resolves every member, their accounts are locked once in
ascending id order, one query finds earlier purchases, and `coalition.ledger.awards` writes the
awards with one INSERT per table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import String, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coalition import clock, economics
from coalition.database import Hot, UTCDateTime, table
from coalition.errors import CoalitionError, IdempotencyConflict, NotFound
from coalition.ledger import operations, reads, shapes
from coalition.ledger.accounts import Issuers, issuer_columns, issuers_from, lock_member_accounts
from coalition.ledger.awards import Award, award_many
from coalition.ledger.models import Account, Transaction
from coalition.ledger.reads import balances_after
from coalition.ledger.rows import Actor
from coalition.members import premium, tiers
from coalition.members.models import Member
from coalition.members.services import (
    FoundMember,
    MemberLock,
    find_members,
    member_of_account,
)
from merchants import rules as earn_rules
from merchants import stamps, targeting
from merchants.budgets import Budget
from merchants.earning import Audience, Basket, Campaign, Earned, Rules, as_parts, earn
from merchants.models import Merchant

transactions = table(Transaction)
merchants = table(Merchant)

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
    """A purchase's transaction: its points, in SPEC 3.3's five parts and `premium`."""

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
    """SPEC 3.3's five parts, and `premium` (a premium membership's extra points), as the
    ledger's events show them too (`coalition.ledger.shapes`)."""
    return shapes.breakdown(stored)


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


def earning_columns(merchant_id: Any, at: Any) -> tuple[Any, ...]:
    """The merchant's earn rules in force at `at`, its issuance cap, its pending window and the
    accounts its awards are issued from, as columns (`merchants.rules.rules_columns`,
    `pending_days`, `merchant_account`, `operator_account`) that a purchase reads with its
    member."""
    days = select(merchants.c.pending_days).where(merchants.c.id == merchant_id).scalar_subquery()
    return (
        *earn_rules.rules_columns(merchant_id, at),
        days.label("pending_days"),
        *issuer_columns(merchant_id),
    )


def earning_at(session: Session, merchant_id: int, at: datetime) -> Any:
    """What `earning_columns` says, read on its own (a batch: its cap and issuers)."""
    return session.execute(select(*earning_columns(merchant_id, at))).one()


# A purchase's member, locked, read with its merchant's rules (`earning_columns`) and its paid
# membership at the purchase's moment: built once.
_AT = bindparam("at", type_=UTCDateTime())


def _lock_with_earning(dialect: str) -> MemberLock:
    """The statement for `dialect` (the qualifying spend is a database function on PostgreSQL):
    with the spend the member had before this purchase, its tier's climb costs no round trip."""
    spend = tiers.spend_of(
        table(Account).c.id,
        bindparam("since", type_=UTCDateTime()),
        bindparam("currency", type_=String()),
        dialect,
    )
    return MemberLock(
        *earning_columns(bindparam("merchant_id"), _AT),
        premium.multiplier_column(table(Member).c.id, _AT),
        spend.label("qualifying_spend"),
    )


_LOCKS_WITH_EARNING = {dialect: _lock_with_earning(dialect) for dialect in ("postgresql", "sqlite")}


def tier_multiplier(terms: economics.Terms, tier: str) -> Decimal:
    """The earn multiplier of the member's tier (`members.tier`) in the terms; 1 for a tier the
    terms no longer name."""
    return next((t.multiplier for t in terms.tiers if t.name == tier), Decimal(1))


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
    transactions.c.rules_version,
    transactions.c.store,
    transactions.c["items"],
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


@dataclass(frozen=True)
class First:
    """What the first purchase under an external_id asked for."""

    account_id: int
    amount: int | None
    currency: str | None
    occurred_at: datetime | None
    # Kept since purchases were earned under earn rules (`rules_version` set); before, None.
    described: tuple[str | None, Any] | None = None

    @classmethod
    def of(cls, row: Any) -> First:
        described = (row.store, row.items) if row.rules_version is not None else None
        return cls(
            row.member_account_id, row.amount_minor, row.currency, row.occurred_at, described
        )

    @classmethod
    def of_line(cls, account_id: int, purchase: Mapping[str, Any]) -> First:
        return cls(
            account_id,
            purchase["amount"],
            purchase["currency"],
            purchase.get("occurred_at"),
            (purchase.get("store"), purchase.get("items")),
        )


def _same_purchase(first: First, account_id: int, purchase: Mapping[str, Any]) -> bool:
    """Whether a repeat of an external_id asks for what the first asked for. `occurred_at`
    counts only when the repeat gives one; `store` and `items` always (absent is absent), unless
    the first was recorded before they were kept."""
    occurred_at = purchase.get("occurred_at")
    return (
        first.account_id == account_id
        and first.amount == purchase["amount"]
        and first.currency == purchase["currency"]
        and (occurred_at is None or occurred_at == first.occurred_at)
        and (
            first.described is None
            or first.described == (purchase.get("store"), purchase.get("items"))
        )
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


def earned_for(
    purchase: Mapping[str, Any],
    rules: Rules,
    terms: economics.Terms,
    tier: str,
    progress: Mapping[str, int],
    now: datetime,
    premium_multiplier: Decimal | None = None,
    audience: Audience | None = None,
) -> Earned:
    """What the purchase earns under `rules` (SPEC 2), for a member of `tier` with `progress` on
    the stamp cards, the multiplier of a paid membership in force then (`premium_multiplier`,
    None without one) and the targeted campaigns that reach it (`audience`, None: none): the
    purchase path's and the portal preview's one computation."""
    return earn(
        rules,
        Basket.of(purchase, purchase.get("occurred_at") or now),
        minor_units=terms.minor_units,
        tier_multiplier=tier_multiplier(terms, tier),
        premium_multiplier=premium_multiplier,
        stamps=progress,
        audience=audience,
    )


def _exposures(
    member_id: int,
    purchase: Mapping[str, Any],
    campaigns: Sequence[Campaign],
    audience: Audience | None,
    now: datetime,
) -> list[tuple[int, str, bool, datetime]]:
    """The targeted campaigns that applied to the purchase, or held its member out."""
    if audience is None:
        return []
    moment = purchase.get("occurred_at") or now
    basket = Basket.of(purchase, moment)
    return [
        (member_id, name, out, moment)
        for name, out in targeting.exposed(campaigns, basket, audience)
    ]


def _award(
    purchase: Mapping[str, Any],
    account_id: int,
    earned: Earned,
    rules: Rules,
    terms: economics.Terms,
    now: datetime,
    pending_days: int = 0,
    member_public_id: str | None = None,
) -> Award:
    # SPEC 2, Pending points: the whole purchase (welcome and tier points too) is pending for
    # the merchant's window, kept within the operator's bounds of the day.
    days = economics.pending_days(pending_days, terms)
    return Award(
        account_id=account_id,
        parts=as_parts(earned),
        # SPEC 2: lots expire `expiry_months` after issue.
        expires_at=clock.add_months(now, terms.expiry_months),
        amount_minor=purchase["amount"],
        currency=purchase["currency"],
        external_id=purchase["external_id"],
        breakdown={**earned.breakdown(), "welcome": 0},
        occurred_at=purchase.get("occurred_at"),
        rules_version=rules.version,
        store=purchase.get("store"),
        items=purchase.get("items"),
        pending_until=now + timedelta(days=days) if days else None,
        member_public_id=member_public_id,
    )


def _needs_stamps(rules: Rules, purchases: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any of the purchases buys in a stamp card's category (else no stamp is read)."""
    categories = {card.category for card in rules.stamp_cards}
    return bool(categories) and any(
        item.get("category") in categories for p in purchases for item in p.get("items") or ()
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
    # either committed (and is found here) or waits for this one. The rules are those in force
    # when the purchase was made; the tier is the member's as its lock is taken.
    member, account, earning = _LOCKS_WITH_EARNING[session.get_bind().dialect.name](
        session,
        purchase["member"],
        merchant_id=merchant_id,
        at=purchase.get("occurred_at") or now,
        since=tiers.window_at(now),
        currency=terms.currency,
    )
    rules, issued_from = earn_rules.from_columns(earning), issuers_from(earning, merchant_id)
    external_id = purchase["external_id"]
    first = earlier_transactions(session, merchant_id, "earn", [external_id]).get(external_id)
    if first is not None:
        if not _same_purchase(First.of(first), member.account_id, purchase):
            raise external_id_conflict(external_id, first.public_id)
        return _replay(first, member, balances_after(session, [first.id])[first.id])
    progress = (
        stamps.progress(session, merchant_id, [account.id])[account.id]
        if _needs_stamps(rules, [purchase])
        else {}
    )
    # A paid membership in force when the purchase was made multiplies it too (SPEC 2).
    found = earning.premium_multiplier
    multiplier = None if found is None else Decimal(found)
    # The member's context only when a targeted campaign runs (most purchases: none).
    moment = purchase.get("occurred_at") or now
    campaigns = targeting.running(rules, moment, purchase.get("store"))
    audience = None
    if campaigns:
        context = targeting.Context.load(
            session, merchant_id, [(member.id, member.account_id)], campaigns, [moment]
        )
        audience = context.audience(member.id, campaigns, moment)
    earned = earned_for(purchase, rules, terms, member.tier, progress, now, multiplier, audience)
    if earning.issuance_cap is not None:
        budget = Budget(session, merchant_id, earning.issuance_cap, now)
        refusal = budget.refusal(earned.merchant_funded)
        if refusal is not None:
            raise refusal
        budget.save()
    stamps.save(
        session, merchant_id, {(account.id, card): n for card, n in earned.stamps.items()}, now
    )
    award = _award(
        purchase,
        member.account_id,
        earned,
        rules,
        terms,
        now,
        int(earning.pending_days or 0),
        member.public_id,
    )
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
    if audience is not None:
        targeting.record(
            session, merchant_id, _exposures(member.id, purchase, campaigns, audience, now), now
        )
    # The spend read with the lock, and this purchase: what the same query would say now.
    spend = int(earning.qualifying_spend) + purchase["amount"]
    upgraded = tiers.after_purchases(
        session, [member], now, merchant_id, spends={member.account_id: spend}
    )
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
        # Holds and pending points are counted as they are now: what the ledger cannot say of
        # a past moment.
        held = reads.held_points(session, account.id, now) + account.pending
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
            member_public_id=member.public_id,
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
            if _same_purchase(First.of(first), member.account_id, purchase):
                replays.append((index, first))
            else:
                outcomes[index] = external_id_conflict(external_id, first.public_id)
        elif external_id in claimed:
            first_index = claimed[external_id]
            first_purchase = purchases[first_index]
            if _same_purchase(
                First.of_line(member_of[first_index].account_id, first_purchase),
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

    awards = _earn_lines(
        session,
        merchant_id=merchant_id,
        lines=[(i, purchases[i], member_of[i]) for i in new],
        terms=terms,
        now=now,
    )
    outcomes.update(awards.refused)
    new = [index for index in new if index not in awards.refused]
    results = award_many(
        session,
        merchant_id=merchant_id,
        awards=[awards.accepted[i] for i in new],
        actor=actor,
        now=now,
        welcome_bonus=terms.welcome_bonus,
        locked=locked,
        issued_from=awards.issued_from,
    )
    # A batch is recorded at one moment: each line shows its member's tier after the batch.
    upgraded = tiers.after_purchases(
        session,
        {member_of[i].account_id: member_of[i] for i in new}.values(),
        now,
        merchant_id,
        spends=awards.spends,
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
        # A line in `new`: recorded above, or refused (its cap), which its repeat is too.
        outcomes[index] = (
            replace(first_result, replayed=True)
            if isinstance(first_result, PurchaseResult)
            else first_result
        )
    return [outcomes[index] for index in range(len(lines))]


@dataclass
class _Earnings:
    accepted: dict[int, Award]
    refused: dict[int, CoalitionError]
    issued_from: Issuers | None
    # The qualifying spends after the batch of the members who may climb a tier.
    spends: dict[int, int] = field(default_factory=dict)


def _earn_lines(
    session: Session,
    *,
    merchant_id: int,
    lines: Sequence[tuple[int, Mapping[str, Any], FoundMember]],
    terms: economics.Terms,
    now: datetime,
) -> _Earnings:
    """The awards of a batch's new lines (index, purchase, member), in order, each under the
    rules in force at its `occurred_at`, the member's tier (as the batch found its members) and
    stamps (read with the members locked), and the merchant's budget: a line past the cap is
    refused, and its stamps are not counted. One query for the rules; the stamps and the budget
    only for a merchant that has stamp cards or a cap. A line that takes its member over a
    tier's threshold upgrades it for the member's later lines, as the same purchases sent one
    by one would (decision 179): one query for the spends of the members below the top tier."""
    if not lines:
        return _Earnings({}, {}, None)
    moments = [p.get("occurred_at") or now for _, p, _ in lines]
    account_ids = {member.account_id for _, _, member in lines}
    earning = earning_at(session, merchant_id, now)
    schedule = earn_rules.versions_between(session, merchant_id, min(moments), max(moments))
    rules_of = [schedule.at(moment) for moment in moments]
    periods = premium.premium_periods(
        session, {member.id for _, _, member in lines}, min(moments), max(moments)
    )
    progress = (
        stamps.progress(session, merchant_id, account_ids)
        if any(_needs_stamps(rules, [p]) for (_, p, _), rules in zip(lines, rules_of, strict=True))
        else {a: {} for a in account_ids}
    )
    budget = (
        Budget(session, merchant_id, earning.issuance_cap, now)
        if earning.issuance_cap is not None
        else None
    )
    ladder = tiers.Ladder.of(terms)
    tier_of = {member.account_id: member.tier for _, _, member in lines}
    spends = tiers.qualifying_spends(
        session,
        {a for a, tier in tier_of.items() if tiers.may_climb(ladder, tier)},
        tiers.window_at(now),
        ladder.currency,
    )
    accepted: dict[int, Award] = {}
    refused: dict[int, CoalitionError] = {}
    changed: dict[tuple[int, str], int] = {}
    # The members' context, in one load, only when a targeted campaign runs for some line.
    running = [
        targeting.running(rules, moment, p.get("store"))
        for (_, p, _), rules, moment in zip(lines, rules_of, moments, strict=True)
    ]
    context = (
        targeting.Context.load(
            session,
            merchant_id,
            {(member.id, member.account_id) for _, _, member in lines},
            {c.name: c for found in running for c in found}.values(),
            moments,
        )
        if any(running)
        else None
    )
    shown: list[tuple[int, str, bool, datetime]] = []
    for (index, purchase, member), rules, moment, campaigns in zip(
        lines, rules_of, moments, running, strict=True
    ):
        account_id = member.account_id
        multiplier = premium.multiplier_in(periods.get(member.id, ()), moment)
        audience = (
            context.audience(member.id, campaigns, moment)
            if context is not None and campaigns
            else None
        )
        earned = earned_for(
            purchase,
            rules,
            terms,
            tier_of[account_id],
            progress[account_id],
            now,
            multiplier,
            audience,
        )
        refusal = budget.refusal(earned.merchant_funded) if budget is not None else None
        if refusal is not None:
            refused[index] = refusal
            continue
        if context is not None:
            context.bought(member.id, moment)
            shown.extend(_exposures(member.id, purchase, campaigns, audience, now))
        if account_id in spends:
            spends[account_id] += purchase["amount"]
            tier_of[account_id] = tiers.climbed(ladder, tier_of[account_id], spends[account_id])
        progress[account_id].update(earned.stamps)
        changed.update({(account_id, card): n for card, n in earned.stamps.items()})
        accepted[index] = _award(
            purchase,
            account_id,
            earned,
            rules,
            terms,
            now,
            int(earning.pending_days or 0),
            member.public_id,
        )
    if budget is not None:
        budget.save()
    stamps.save(session, merchant_id, changed, now)
    targeting.record(session, merchant_id, shown, now)
    return _Earnings(accepted, refused, issuers_from(earning, merchant_id), spends)
