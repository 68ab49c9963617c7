"""Tiers (SPEC 2, Tiers): a member's tier follows its qualifying spend, the coalition-wide purchase
amount of the trailing 12 months less refunds, against the thresholds of the economics' `tiers`.

- The window (decision 177): 12 months of business days in the coalition's time zone ending with
  the current one, by when the coalition recorded the purchase (`created_at`). On 28 November
  2026 it starts at 00:00 on 29 November 2025: a purchase of 28 November 2025 counted through
  27 November 2026, and the nightly run after that day sees it go.
- Refunds count against their purchase (decision 178): a refund lowers the spend while its purchase
  is in the window and leaves with it, so a purchase refunded in full never counts.
- An upgrade happens on the purchase that crosses a threshold (`after_purchases`, in the
  purchase's transaction); its points were earned under the tier before it: the multiplier
  applies from the next purchase (decision 179). A downgrade happens only at the nightly
  recalculation (`recalculate`), which also catches up an upgrade a purchase did not make.
- Each change writes `member.tier_changed` to the outbox in the same transaction.

On PostgreSQL row-level security shows a merchant only its own transactions, so the per-member
spend a purchase reads comes from `coalition_qualifying_spend`, a database function that sums as
the system (as `coalition_held_points` does for holds)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from coalition import clock, economics, outbox
from coalition.database import UTCDateTime, table
from coalition.ledger.models import Account, Transaction
from coalition.members.models import Member
from coalition.members.services import FoundMember

members = table(Member)
accounts = table(Account)
transactions = table(Transaction)

WINDOW_MONTHS = 12
# PostgreSQL's memory for the nightly aggregate's hash tables, for its transaction only.
RECALCULATION_WORK_MEM = "256MB"
TIER_CHANGED = "member.tier_changed"
# `reason` of a change: the purchase that crossed a threshold, or the nightly recalculation.
BY_PURCHASE = "purchase"
BY_RECALCULATION = "recalculation"


@dataclass(frozen=True)
class Ladder:
    """The coalition's tiers, lowest threshold first, with thresholds in minor units."""

    names: tuple[str, ...]
    thresholds: tuple[int, ...]  # minor units of `currency`
    currency: str

    @classmethod
    def of(cls, terms: economics.Terms) -> Ladder:
        ordered = sorted(terms.tiers, key=lambda tier: tier.qualifying_spend)
        thresholds = tuple(
            int((tier.qualifying_spend * terms.minor_units).to_integral_value(ROUND_CEILING))
            for tier in ordered
        )
        return cls(tuple(tier.name for tier in ordered), thresholds, terms.currency)

    def rank(self, name: str) -> int | None:
        """A tier's place (0 the lowest); None for a name the terms no longer have."""
        return self.names.index(name) if name in self.names else None

    def tier_for(self, spend: int) -> str:
        """The highest tier whose threshold `spend` reaches (the lowest one below them all)."""
        reached = self.names[0]
        for name, threshold in zip(self.names, self.thresholds, strict=True):
            if spend >= threshold:
                reached = name
        return reached

    def next_above(self, name: str) -> tuple[str, int] | None:
        """The tier after `name` and its threshold; None at the top (or for an unknown name)."""
        rank = self.rank(name)
        if rank is None or rank + 1 >= len(self.names):
            return None
        return self.names[rank + 1], self.thresholds[rank + 1]

    def tier_of(self, spend: Any) -> Any:
        """`tier_for` as a SQL expression of a spend column."""
        if len(self.names) == 1:
            return literal(self.names[0])
        return case(
            *(
                (spend >= threshold, name)
                for name, threshold in reversed(
                    list(zip(self.names, self.thresholds, strict=True))[1:]
                )
            ),
            else_=self.names[0],
        )


def ladder_at(session: Session, moment: datetime) -> Ladder:
    return Ladder.of(economics.terms_at(moment, None, session))


def window_start(day: date, zone: str) -> datetime:
    """The first instant (UTC) of the qualifying window on business day `day`: midnight, in the
    coalition's zone, of the day after the same date 12 months before (`clock.add_months`: the
    month's last day when it is shorter). The window is thus `day` and the 364 or 365 days
    before it: a purchase counts for 12 months to the day."""
    year_before = clock.add_months(datetime.combine(day, time.min), -WINDOW_MONTHS).date()
    midnight = datetime.combine(year_before + timedelta(days=1), time.min, tzinfo=ZoneInfo(zone))
    return midnight.astimezone(UTC)


def _zone() -> str:
    return str(current_app.config["COALITION_TIMEZONE"])


def window_at(moment: datetime) -> datetime:
    return window_start(clock.business_date(moment, _zone()), _zone())


def _spend_parts(since: Any, currency: Any, sign: int = 1) -> tuple[Any, Any]:
    """Purchases in the window (their amounts) and the refunds of them (their amounts times
    `sign`), as two selects of (`account_id`, `amount`)."""
    refund, original = transactions.alias("refund"), transactions.alias("original")
    earns = select(
        transactions.c.member_account_id.label("account_id"),
        transactions.c.amount_minor.label("amount"),
    ).where(
        transactions.c.type == "earn",
        transactions.c.currency == currency,
        transactions.c.created_at >= since,
    )
    refunds = (
        select(
            refund.c.member_account_id.label("account_id"),
            (refund.c.amount_minor * sign).label("amount"),
        )
        .select_from(refund.join(original, original.c.id == refund.c.original_id))
        .where(
            refund.c.type == "refund",
            original.c.currency == currency,
            original.c.created_at >= since,
        )
    )
    return earns, refunds


def _spend_rows(since: Any, currency: Any) -> Any:
    """Every account's purchases in the window (+amount) and refunds of them (-amount)."""
    return union_all(*_spend_parts(since, currency, sign=-1)).subquery("spent")


def spend_of(account: Any, since: Any, currency: Any, dialect: str) -> Any:
    """An expression for a member's qualifying spend in minor units (`account` a value or a
    column). On PostgreSQL a database function sums it as the system: row-level security
    would show a merchant only its own purchases."""
    if dialect == "postgresql":
        return func.coalition_qualifying_spend(account, since, currency)
    earns, refunds = (part.subquery() for part in _spend_parts(since, currency))

    def total(part: Any) -> Any:
        return (
            select(func.coalesce(func.sum(part.c.amount), 0))
            .where(part.c.account_id == account)
            .scalar_subquery()
        )

    return total(earns) - total(refunds)


def qualifying_spends(
    session: Session, account_ids: Iterable[int], since: datetime, currency: str
) -> dict[int, int]:
    """Each member account's qualifying spend since `since`, in one statement."""
    wanted = sorted(set(account_ids))
    if not wanted:
        return {}
    dialect = session.get_bind().dialect.name
    since_value = bindparam("since", since, type_=UTCDateTime())
    rows = session.execute(
        select(
            accounts.c.id, spend_of(accounts.c.id, since_value, currency, dialect).label("spend")
        ).where(accounts.c.id.in_(wanted))
    ).all()
    return {row.id: int(row.spend) for row in rows}


def _event(purchaser: FoundMember, to: str, reason: str) -> dict[str, Any]:
    """A purchase's upgrade, told to the merchant where it happened: the tier, never the
    coalition-wide spend behind it (other shops' business; the nightly run's own events,
    which are the coalition's, carry it)."""
    return {
        "member": {"id": purchaser.public_id},
        "from": purchaser.tier,
        "to": to,
        "reason": reason,
    }


def may_climb(ladder: Ladder, tier: str) -> bool:
    """Whether a member of `tier` could still be upgraded by a purchase: below the top, and in
    a tier the terms still name (others are left to the nightly recalculation)."""
    rank = ladder.rank(tier)
    return rank is not None and rank < len(ladder.names) - 1


def climbed(ladder: Ladder, tier: str, spend: int) -> str:
    """The tier a member of `tier` is in once its qualifying spend is `spend`: higher if the
    spend reached a higher threshold, never lower (a purchase only climbs)."""
    reached = ladder.tier_for(spend)
    return reached if ladder.names.index(reached) > (ladder.rank(tier) or 0) else tier


def after_purchases(
    session: Session,
    purchasers: Iterable[FoundMember],
    now: datetime,
    merchant_id: int,
    spends: Mapping[int, int] | None = None,
) -> dict[int, str]:
    """Upgrade the members whose purchases (recorded at `now`, in this transaction, under their
    accounts' locks) took their spend over a threshold: the new tier by member id. Never a
    downgrade. One statement reads the spends of the members not already at the top tier
    (unless the caller gives them, after its purchases: a batch counts them as it goes);
    upgrades, which are rare, are one update and one event each."""
    # The merchant's terms, which the purchase has just read (cached): tiers are coalition-wide.
    ladder = Ladder.of(economics.terms_at(now, merchant_id, session))
    climbing = {p.account_id: p for p in purchasers if may_climb(ladder, p.tier)}
    if not climbing:
        return {}
    if spends is None:
        spends = qualifying_spends(session, climbing, window_at(now), ladder.currency)
    upgraded: dict[int, str] = {}
    events = []
    for account_id, purchaser in sorted(climbing.items()):
        spend = spends.get(account_id, 0)
        reached = ladder.tier_for(spend)
        if ladder.names.index(reached) <= (ladder.rank(purchaser.tier) or 0):
            continue
        # Only from the tier read under the lock: a nightly run that changed it meanwhile wins
        # (the next purchase or run sees the spend again).
        result = session.execute(
            update(members)
            .where(members.c.id == purchaser.id, members.c.tier == purchaser.tier)
            .values(tier=reached)
        )
        changed = getattr(result, "rowcount", 0)
        if not changed:
            continue
        upgraded[purchaser.id] = reached
        events.append(
            outbox.event_row(
                TIER_CHANGED,
                _event(purchaser, reached, BY_PURCHASE),
                now,
                merchant_id=merchant_id,
                member_id=purchaser.id,
            )
        )
    if events:
        outbox.record(session, events)
    return upgraded


def as_upgraded(member: FoundMember, upgraded: Mapping[int, str]) -> FoundMember:
    """The member as a purchase's answer shows it: in its new tier if the purchase upgraded it."""
    tier = upgraded.get(member.id)
    return member if tier is None else replace(member, tier=tier)


def _event_id(dialect: str) -> Any:
    """A new event's public id made by the database: `evt_` and 36 random hex digits (144 bits
    of a strong random source; 138 on PostgreSQL, where six bits of a UUID are fixed), as
    unguessable as `ids.new_id`'s 143 bits."""
    if dialect == "postgresql":
        return literal_column(
            "'evt_' || substr(replace(gen_random_uuid()::text || gen_random_uuid()::text,"
            " '-', ''), 1, 36)"
        )
    return literal_column("'evt_' || lower(hex(randomblob(18)))")


def _event_data(
    dialect: str, public_id: Any, from_: Any, to: Any, spend: Any, currency: str
) -> Any:
    """`_event`'s document, built by the database."""
    build = func.jsonb_build_object if dialect == "postgresql" else func.json_object

    def word(value: str) -> Any:
        return cast(literal(value), String)

    return build(
        word("member"),
        build(word("id"), public_id),
        word("from"),
        from_,
        word("to"),
        to,
        word("reason"),
        word(BY_RECALCULATION),
        word("qualifying_spend"),
        build(word("amount"), cast(spend, BigInteger), word("currency"), word(currency)),
    )


@dataclass(frozen=True)
class Recalculated:
    day: date
    since: datetime
    changed: int


def recalculate(session: Session, day: date, now: datetime) -> Recalculated:
    """The nightly recalculation after business day `day`: every member's tier made what its
    spend says, both ways, over the window of the next day (which starts at its midnight 12
    months before) and counting every purchase recorded by `now`. Set-based: one aggregate over
    the window's transactions; on PostgreSQL one statement updates the members whose tier
    changes and writes their events, on SQLite (a single writer) a few. Idempotent: a second
    run finds nothing to change; the caller commits, so a crash changes nothing."""
    zone = _zone()
    dialect = session.get_bind().dialect.name
    following = day + timedelta(days=1)
    ladder = Ladder.of(economics.coalition_terms(session, following))
    since = window_start(following, zone)
    spent = _spend_rows(bindparam("since", since, type_=UTCDateTime()), ladder.currency)
    per_account = (
        select(spent.c.account_id, func.sum(spent.c.amount).label("spend"))
        .group_by(spent.c.account_id)
        .subquery("per_account")
    )
    spend = func.coalesce(per_account.c.spend, 0)
    wanted = ladder.tier_of(spend)
    changes = (
        select(
            members.c.id.label("member_id"),
            members.c.public_id,
            members.c.tier.label("from_tier"),
            wanted.label("to_tier"),
            spend.label("spend"),
        )
        .select_from(
            members.join(accounts, accounts.c.member_id == members.c.id).outerjoin(
                per_account, per_account.c.account_id == accounts.c.id
            )
        )
        .where(members.c.tier != wanted)
    )
    columns = ["public_id", "type", "merchant_id", "member_id", "data", "created_at"]
    if dialect == "postgresql":
        # One large aggregate a night: room to hash a million members in memory, and no JIT
        # (compiling the statement took seconds and saved nothing: docs/benchmarks.md).
        session.execute(text(f"SET LOCAL work_mem = '{RECALCULATION_WORK_MEM}'"))
        session.execute(text("SET LOCAL jit = off"))
        wanted_rows = changes.cte("wanted")
        changed = (
            update(members)
            .where(
                members.c.id == wanted_rows.c.member_id,
                members.c.tier == wanted_rows.c.from_tier,
            )
            .values(tier=wanted_rows.c.to_tier)
            .returning(
                members.c.id,
                members.c.public_id,
                wanted_rows.c.from_tier,
                wanted_rows.c.to_tier,
                wanted_rows.c.spend,
            )
            .cte("changed")
        )
        events = select(
            _event_id(dialect),
            literal(TIER_CHANGED),
            literal(None, Integer),
            changed.c.id,
            _event_data(
                dialect,
                changed.c.public_id,
                changed.c.from_tier,
                changed.c.to_tier,
                changed.c.spend,
                ladder.currency,
            ),
            bindparam("now", now, type_=UTCDateTime()),
        )
        told = (
            insert(outbox.outbox_events)
            .from_select(columns, events)
            .returning(outbox.outbox_events.c.id)
            .cte("told")
        )
        count = session.execute(select(func.count()).select_from(told)).scalar_one()
    else:
        # SQLite has one writer at a time: the changes are staged, then applied and told.
        connection = session.connection()
        _STAGED.drop(connection, checkfirst=True)
        _STAGED.create(connection)
        session.execute(insert(_STAGED).from_select([c.name for c in _STAGED.c], changes))
        staged = _STAGED
        session.execute(
            update(members)
            .where(members.c.id.in_(select(staged.c.member_id)))
            .values(
                tier=select(staged.c.to_tier)
                .where(staged.c.member_id == members.c.id)
                .scalar_subquery()
            )
        )
        events = select(
            _event_id(dialect),
            literal(TIER_CHANGED),
            literal(None, Integer),
            staged.c.member_id,
            _event_data(
                dialect,
                staged.c.public_id,
                staged.c.from_tier,
                staged.c.to_tier,
                staged.c.spend,
                ladder.currency,
            ),
            bindparam("now", now, type_=UTCDateTime()),
        )
        result = session.execute(insert(outbox.outbox_events).from_select(columns, events))
        count = getattr(result, "rowcount", 0)
        _STAGED.drop(connection)
    return Recalculated(day, since, int(count or 0))


# SQLite's staging of the nightly changes: a temporary table of the connection.
_STAGED = Table(
    "tier_changes",
    MetaData(),
    Column("member_id", BigInteger),
    Column("public_id", String(40)),
    Column("from_tier", String(40)),
    Column("to_tier", String(40)),
    Column("spend", BigInteger),
    prefixes=["TEMPORARY"],
)


def tier_counts(session: Session) -> list[tuple[str, int]]:
    """Members per tier, in the order of the ladder in force (tiers nobody holds count 0; a
    tier the terms no longer name, held by members until the nightly run, comes last)."""
    ladder = ladder_at(session, clock.utcnow())
    rows = {
        row.tier: row.held_by
        for row in session.execute(
            select(members.c.tier, func.count().label("held_by")).group_by(members.c.tier)
        )
    }
    counts = [(name, int(rows.pop(name, 0))) for name in ladder.names]
    return counts + sorted((name, int(n)) for name, n in rows.items())


def progress(session: Session, account_id: int, tier: str, now: datetime) -> Mapping[str, Any]:
    """How far the member is: its qualifying spend, the next tier and what it takes to reach it
    (minor units), and the window (first day counted)."""
    ladder = ladder_at(session, now)
    since = window_at(now)
    spend = qualifying_spends(session, [account_id], since, ladder.currency).get(account_id, 0)
    following = ladder.next_above(tier)
    currency = ladder.currency
    return {
        "current": tier,
        "next": following[0] if following else None,
        "qualifying_spend": {"amount": spend, "currency": currency},
        "next_threshold": {"amount": following[1], "currency": currency} if following else None,
        "spend_to_next": (
            {"amount": max(following[1] - spend, 0), "currency": currency} if following else None
        ),
        "since": clock.business_date(since, _zone()),
    }
