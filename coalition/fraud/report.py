"""The nightly fraud report (SPEC 3.10): for one closed business day, every kind of finding
computed by set-based SQL over the ledger and the fraud events, each written once as a
`fraud_alerts` row with its evidence (`run`). `docs/fraud.md` says what each kind means, its
rule and its evidence; the thresholds are the constants below (decision 318).

Each finding has a key (its kind, whom it is about and, for the kinds judged day by day, the
business day), unique in the table: a rerun of a day, or a crash and a rerun, writes nothing
twice (decision 317). The report reads as the system: it sees every merchant's transactions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    column,
    distinct,
    exists,
    func,
    literal,
    select,
)
from sqlalchemy import table as core_table
from sqlalchemy.orm import Session

from coalition import clock, tenancy
from coalition.database import insert_unless_present, table
from coalition.fraud.models import fraud_alerts, fraud_events
from coalition.ids import new_id
from coalition.ledger.models import Account, Transaction
from coalition.members.models import Member

transactions = table(Transaction)
accounts = table(Account)
members = table(Member)
# Named rather than imported: the core does not import `merchants`.
merchants = core_table("merchants", column("id"), column("public_id"), column("name"))

# Redemptions far above issuance: over the 30 days ending with the day, a merchant redeemed at
# least RATIO times the points it issued, and at least MIN_POINTS (decision 318).
EXCESS_WINDOW: Final = timedelta(days=30)
EXCESS_RATIO: Final = 5
EXCESS_MIN_POINTS: Final = 5000
# Self-dealing: of a merchant's redemptions on the day, at least half the points were redeemed
# by members who had earned at the same merchant within the two hours before, and at least
# five such members.
SELF_DEALING_WINDOW: Final = timedelta(hours=2)
SELF_DEALING_MIN_MEMBERS: Final = 5
SELF_DEALING_SHARE_PERCENT: Final = 50
# Enrolled and drained: within 24 hours of enrolling, a member received at least 200 points and
# spent at least 90 % of what it received.
DRAIN_WINDOW: Final = timedelta(hours=24)
DRAIN_MIN_POINTS: Final = 200
DRAIN_SHARE_PERCENT: Final = 90
# Far outside a merchant's normal pattern: an earn or a redemption of at least FACTOR times the
# merchant's 99th percentile (of that type) over the 90 days before the day, and at least
# MIN_POINTS, where the merchant has at least MIN_HISTORY such transactions to judge by.
UNUSUAL_HISTORY: Final = timedelta(days=90)
UNUSUAL_FACTOR: Final = 5
UNUSUAL_MIN_POINTS: Final = 1000
UNUSUAL_MIN_HISTORY: Final = 30
# Earn at one shop, spend at another: over the 30 days ending with the day, of the members who
# earned at one merchant only and spent at one merchant only, at least MIN_MEMBERS earned only
# at A and spent only at B (A is not B), LIFT times what the other such members' shops would
# predict (independence), and one of them spent at B on the day.
CLUSTER_WINDOW: Final = timedelta(days=30)
CLUSTER_MIN_MEMBERS: Final = 4
CLUSTER_LIFT: Final = 5
# Bursts of wrong codes: at one merchant on the day, at least 10 wrong redemption codes, or at
# least two members locked out by them.
WRONG_CODES_MIN: Final = 10
LOCKOUTS_MIN: Final = 2
# An alert names at most this many transactions or members; its counts say how many in all.
EVIDENCE_LIMIT: Final = 50


@dataclass(frozen=True)
class Finding:
    """One alert to write: its kind, its key (unique), whom it is about, its evidence."""

    kind: str
    key: str
    merchant_id: int | None
    member_id: int | None
    evidence: dict[str, Any]


@dataclass(frozen=True)
class Day:
    """A business day and its bounds in UTC, [start, end)."""

    day: date
    start: datetime
    end: datetime


def business_day(day: date, zone: str) -> Day:
    return Day(
        day,
        clock.end_of_business_date(day - timedelta(days=1), zone),
        clock.end_of_business_date(day, zone),
    )


def run(session: Session, day: date, zone: str, now: datetime) -> dict[str, int]:
    """Compute every finding for business day `day` and write those not written before;
    returns the number written, by kind. Runs in the caller's transaction."""
    bounds = business_day(day, zone)
    with tenancy.acting_as(tenancy.SYSTEM, session):
        findings = [
            *redemption_excess(session, bounds),
            *self_dealing(session, bounds),
            *enrol_drain(session, bounds),
            *unusual_transactions(session, bounds),
            *earn_spend_clusters(session, bounds),
            *wrong_codes(session, bounds),
            *velocity(session, bounds),
        ]
        return write(session, day, findings, now)


def write(
    session: Session, day: date, findings: Iterable[Finding], now: datetime
) -> dict[str, int]:
    written: dict[str, int] = {}
    for finding in findings:
        done = session.execute(
            insert_unless_present(session, fraud_alerts, ["key"])
            .values(
                public_id=new_id("fra"),
                key=finding.key,
                kind=finding.kind,
                business_date=day,
                merchant_id=finding.merchant_id,
                member_id=finding.member_id,
                evidence=finding.evidence,
                state="open",
                created_at=now,
            )
            .returning(fraud_alerts.c.id)
        ).first()
        if done is not None:
            written[finding.kind] = written.get(finding.kind, 0) + 1
    return written


# Helpers ---------------------------------------------------------------------------------------


def _epoch(session: Session, moment: Any) -> ColumnElement[Any]:
    """Seconds since 1970 of a UTC datetime column, in the session's dialect (SQLite keeps
    naive UTC text, which `julianday` reads)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", moment)
    return (func.julianday(moment) - literal(2440587.5)) * literal(86400.0)


def _ratio(numerator: int, denominator: int) -> str | None:
    if not denominator:
        return None
    return str((Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.01"), ROUND_HALF_UP))


def _merchant_names(session: Session, ids: Iterable[int | None]) -> dict[int, dict[str, str]]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(
        select(merchants.c.id, merchants.c.public_id, merchants.c.name).where(
            merchants.c.id.in_(wanted)
        )
    ).all()
    return {row.id: {"id": row.public_id, "name": row.name} for row in rows}


def _recently_alerted(session: Session, kind: str, day: date, window: timedelta) -> set[str]:
    """The subjects (the key without its day) of `kind` alerted in the window before `day`: a
    pattern over a window is flagged once per window, not each day it lasts (decision 317)."""
    keys = session.execute(
        select(fraud_alerts.c.key).where(
            fraud_alerts.c.kind == kind,
            fraud_alerts.c.business_date >= day - timedelta(days=window.days - 1),
            fraud_alerts.c.business_date < day,
        )
    ).scalars()
    return {key.rsplit(":", 1)[0] for key in keys}


def _transactions_of(session: Session, where: ColumnElement[bool]) -> list[dict[str, Any]]:
    """Transactions as evidence: id, type, member, merchant, points, amount, when."""
    rows = session.execute(
        select(
            transactions.c.public_id,
            transactions.c.type,
            transactions.c.points,
            transactions.c.amount_minor,
            transactions.c.currency,
            transactions.c.created_at,
            members.c.public_id.label("member"),
            merchants.c.public_id.label("merchant"),
        )
        .join(accounts, accounts.c.id == transactions.c.member_account_id)
        .join(members, members.c.id == accounts.c.member_id)
        .outerjoin(merchants, merchants.c.id == transactions.c.merchant_id)
        .where(where)
        .order_by(transactions.c.created_at, transactions.c.id)
        .limit(EVIDENCE_LIMIT)
    ).all()
    return [
        {
            "id": row.public_id,
            "type": row.type,
            "member": row.member,
            "merchant": row.merchant,
            "points": int(row.points),
            "amount_minor": None if row.amount_minor is None else int(row.amount_minor),
            "currency": row.currency,
            "at": row.created_at.isoformat(),
        }
        for row in rows
    ]


# The kinds -------------------------------------------------------------------------------------


def redemption_excess(session: Session, bounds: Day) -> list[Finding]:
    """Merchants whose redemptions over the window far exceed what they issued in it."""
    since = bounds.end - EXCESS_WINDOW
    t = transactions
    in_window = and_(
        t.c.merchant_id.is_not(None), t.c.created_at >= since, t.c.created_at < bounds.end
    )
    points_of = lambda kind: func.coalesce(  # noqa: E731
        func.sum(case((t.c.type == kind, t.c.points), else_=0)), 0
    )
    redeemed, issued = points_of("redeem"), points_of("earn")
    rows = session.execute(
        select(
            t.c.merchant_id,
            issued.label("issued"),
            redeemed.label("redeemed"),
            func.sum(case((t.c.type == "redeem", 1), else_=0)).label("redemptions"),
            func.count(distinct(case((t.c.type == "redeem", t.c.member_account_id)))).label(
                "members"
            ),
            func.max(case((t.c.type == "redeem", t.c.created_at))).label("last_redeemed"),
        )
        .where(in_window, t.c.type.in_(("earn", "redeem")))
        .group_by(t.c.merchant_id)
        .having(redeemed >= EXCESS_MIN_POINTS, redeemed >= issued * EXCESS_RATIO)
    ).all()
    seen = _recently_alerted(session, "redemption_excess", bounds.day, EXCESS_WINDOW)
    names = _merchant_names(session, (row.merchant_id for row in rows))
    found = []
    for row in rows:
        subject = f"redemption_excess:{row.merchant_id}"
        if row.last_redeemed is None or row.last_redeemed < bounds.start or subject in seen:
            continue  # nothing new on the day, or flagged already in this window
        found.append(
            Finding(
                "redemption_excess",
                f"{subject}:{bounds.day.isoformat()}",
                row.merchant_id,
                None,
                {
                    "merchant": names[row.merchant_id],
                    "from": since.isoformat(),
                    "to": bounds.end.isoformat(),
                    "issued_points": int(row.issued),
                    "redeemed_points": int(row.redeemed),
                    "ratio": _ratio(int(row.redeemed), int(row.issued)),
                    "redemptions": int(row.redemptions),
                    "members": int(row.members),
                    "thresholds": {
                        "window_days": EXCESS_WINDOW.days,
                        "ratio": EXCESS_RATIO,
                        "min_redeemed_points": EXCESS_MIN_POINTS,
                    },
                },
            )
        )
    return found


def self_dealing(session: Session, bounds: Day) -> list[Finding]:
    """Merchants whose redemptions on the day were mostly of points their own till had just
    issued to the same members."""
    r, e = transactions.alias("r"), transactions.alias("e")
    quick = exists().where(
        e.c.type == "earn",
        e.c.merchant_id == r.c.merchant_id,
        e.c.member_account_id == r.c.member_account_id,
        e.c.created_at <= r.c.created_at,
        e.c.created_at >= bounds.start - SELF_DEALING_WINDOW,
        _epoch(session, r.c.created_at) - _epoch(session, e.c.created_at)
        <= SELF_DEALING_WINDOW.total_seconds(),
    )
    redemptions = (
        select(
            r.c.id,
            r.c.merchant_id,
            r.c.member_account_id,
            r.c.points,
            case((quick, 1), else_=0).label("quick"),
        )
        .where(
            r.c.type == "redeem",
            r.c.merchant_id.is_not(None),
            r.c.created_at >= bounds.start,
            r.c.created_at < bounds.end,
        )
        .subquery()
    )
    d = redemptions.c
    quick_points = func.sum(d.points * d.quick)
    total_points = func.sum(d.points)
    quick_members = func.count(distinct(case((d.quick == 1, d.member_account_id))))
    rows = session.execute(
        select(
            d.merchant_id,
            total_points.label("points"),
            quick_points.label("quick_points"),
            quick_members.label("quick_members"),
            func.count().label("redemptions"),
            func.sum(d.quick).label("quick_redemptions"),
        )
        .group_by(d.merchant_id)
        .having(
            quick_members >= SELF_DEALING_MIN_MEMBERS,
            quick_points * 100 >= total_points * SELF_DEALING_SHARE_PERCENT,
        )
    ).all()
    names = _merchant_names(session, (row.merchant_id for row in rows))
    found = []
    for row in rows:
        quick_ids = select(d.id).where(d.merchant_id == row.merchant_id, d.quick == 1)
        shown = _transactions_of(session, transactions.c.id.in_(quick_ids))
        found.append(
            Finding(
                "self_dealing",
                f"self_dealing:{row.merchant_id}:{bounds.day.isoformat()}",
                row.merchant_id,
                None,
                {
                    "merchant": names[row.merchant_id],
                    "redemptions": int(row.redemptions),
                    "redeemed_points": int(row.points),
                    "quick_redemptions": int(row.quick_redemptions),
                    "quick_points": int(row.quick_points),
                    "quick_share": _ratio(int(row.quick_points), int(row.points)),
                    "members_count": int(row.quick_members),
                    "members": sorted({t["member"] for t in shown}),
                    "transactions": shown,
                    "thresholds": {
                        "window_hours": int(SELF_DEALING_WINDOW.total_seconds() // 3600),
                        "min_members": SELF_DEALING_MIN_MEMBERS,
                        "min_share_percent": SELF_DEALING_SHARE_PERCENT,
                    },
                },
            )
        )
    return found


def enrol_drain(session: Session, bounds: Day) -> list[Finding]:
    """Members who, within hours of enrolling, received points and spent nearly all of them.
    One alert per member whatever day finds it (a window may span two business days)."""
    t, m = transactions, members
    within = and_(
        t.c.created_at >= m.c.created_at,
        t.c.created_at < bounds.end,
        _epoch(session, t.c.created_at) - _epoch(session, m.c.created_at)
        < DRAIN_WINDOW.total_seconds(),
    )
    received = func.coalesce(func.sum(case((t.c.type == "earn", t.c.points), else_=0)), 0)
    spent = func.coalesce(func.sum(case((t.c.type == "redeem", t.c.points), else_=0)), 0)
    rows = session.execute(
        select(
            m.c.id,
            m.c.public_id,
            m.c.created_at,
            accounts.c.id.label("account_id"),
            received.label("received"),
            spent.label("spent"),
            func.max(case((t.c.type == "redeem", t.c.created_at))).label("last_spent"),
        )
        .join(accounts, accounts.c.member_id == m.c.id)
        .join(t, and_(t.c.member_account_id == accounts.c.id, within))
        .where(
            m.c.created_at >= bounds.start - DRAIN_WINDOW,
            m.c.created_at < bounds.end,
            t.c.type.in_(("earn", "redeem")),
        )
        .group_by(m.c.id, m.c.public_id, m.c.created_at, accounts.c.id)
        .having(
            received >= DRAIN_MIN_POINTS,
            spent * 100 >= received * DRAIN_SHARE_PERCENT,
        )
    ).all()
    found = []
    for row in rows:
        if row.last_spent is None:
            continue  # nothing spent: no drain, whatever the thresholds
        shown = _transactions_of(
            session,
            and_(
                transactions.c.member_account_id == row.account_id,
                transactions.c.type.in_(("earn", "redeem")),
                transactions.c.created_at >= row.created_at,
                transactions.c.created_at <= row.last_spent,
            ),
        )
        hours = (row.last_spent - row.created_at).total_seconds() / 3600
        found.append(
            Finding(
                "enrol_drain",
                f"enrol_drain:{row.id}",
                None,
                row.id,
                {
                    "member": row.public_id,
                    "enrolled_at": row.created_at.isoformat(),
                    "received_points": int(row.received),
                    "spent_points": int(row.spent),
                    "spent_share": _ratio(int(row.spent), int(row.received)),
                    "hours_to_drain": str(Decimal(hours).quantize(Decimal("0.1"), ROUND_HALF_UP)),
                    "merchants": sorted({t["merchant"] for t in shown if t["merchant"]}),
                    "transactions": shown,
                    "thresholds": {
                        "window_hours": int(DRAIN_WINDOW.total_seconds() // 3600),
                        "min_received_points": DRAIN_MIN_POINTS,
                        "min_spent_percent": DRAIN_SHARE_PERCENT,
                    },
                },
            )
        )
    return found


def unusual_transactions(session: Session, bounds: Day) -> list[Finding]:
    """Earns and redemptions of the day far above their merchant's 99th percentile over the
    90 days before (nearest rank, by window functions both backends have)."""
    t = transactions
    partition = (t.c.merchant_id, t.c.type)
    # Only merchants with a transaction of the day big enough to be flagged need their norm: a
    # night without one reads no history at all.
    candidates = (
        select(t.c.merchant_id)
        .where(
            t.c.created_at >= bounds.start,
            t.c.created_at < bounds.end,
            t.c.points >= UNUSUAL_MIN_POINTS,
            t.c.type.in_(("earn", "redeem")),
            t.c.merchant_id.is_not(None),
        )
        .distinct()
    )
    history = (
        select(
            t.c.merchant_id,
            t.c.type,
            t.c.points,
            func.row_number().over(partition_by=partition, order_by=t.c.points).label("rank"),
            func.count().over(partition_by=partition).label("n"),
        )
        .where(
            t.c.merchant_id.in_(candidates),
            t.c.type.in_(("earn", "redeem")),
            t.c.created_at >= bounds.start - UNUSUAL_HISTORY,
            t.c.created_at < bounds.start,
        )
        .subquery()
    )
    norms = (
        select(
            history.c.merchant_id,
            history.c.type,
            func.max(history.c.n).label("n"),
            func.min(case((history.c.rank * 100 >= history.c.n * 99, history.c.points))).label(
                "p99"
            ),
            func.min(case((history.c.rank * 2 >= history.c.n, history.c.points))).label("median"),
        )
        .group_by(history.c.merchant_id, history.c.type)
        .having(func.max(history.c.n) >= UNUSUAL_MIN_HISTORY)
        .subquery()
    )
    rows = session.execute(
        select(t.c.id, t.c.merchant_id, t.c.points, norms.c.p99, norms.c.median, norms.c.n)
        .join(norms, and_(norms.c.merchant_id == t.c.merchant_id, norms.c.type == t.c.type))
        .where(
            t.c.created_at >= bounds.start,
            t.c.created_at < bounds.end,
            t.c.points >= UNUSUAL_MIN_POINTS,
            t.c.points >= norms.c.p99 * UNUSUAL_FACTOR,
        )
        .order_by(t.c.id)
    ).all()
    names = _merchant_names(session, (row.merchant_id for row in rows))
    found = []
    for row in rows:
        [shown] = _transactions_of(session, transactions.c.id == row.id)
        member_id = session.execute(
            select(accounts.c.member_id)
            .join(transactions, transactions.c.member_account_id == accounts.c.id)
            .where(transactions.c.id == row.id)
        ).scalar_one()
        found.append(
            Finding(
                "unusual_transaction",
                f"unusual_transaction:{shown['id']}",
                row.merchant_id,
                member_id,
                {
                    "merchant": names[row.merchant_id],
                    "member": shown["member"],
                    "transaction": shown,
                    "merchant_p99_points": int(row.p99),
                    "merchant_median_points": int(row.median),
                    "history_transactions": int(row.n),
                    "times_p99": _ratio(int(row.points), int(row.p99)),
                    "thresholds": {
                        "history_days": UNUSUAL_HISTORY.days,
                        "factor": UNUSUAL_FACTOR,
                        "min_points": UNUSUAL_MIN_POINTS,
                        "min_history": UNUSUAL_MIN_HISTORY,
                    },
                },
            )
        )
    return found


def _single_shop_members(bounds: Day) -> Any:
    """Per member account over the cluster window: where it earned and spent, when it earned
    at one merchant only and spent at one merchant only; and whether it spent on the day."""
    t = transactions
    return (
        select(
            t.c.member_account_id,
            func.min(case((t.c.type == "earn", t.c.merchant_id))).label("earned_at"),
            func.min(case((t.c.type == "redeem", t.c.merchant_id))).label("spent_at"),
            func.max(
                case((and_(t.c.type == "redeem", t.c.created_at >= bounds.start), 1), else_=0)
            ).label("spent_today"),
        )
        .where(
            t.c.merchant_id.is_not(None),
            t.c.type.in_(("earn", "redeem")),
            t.c.created_at >= bounds.end - CLUSTER_WINDOW,
            t.c.created_at < bounds.end,
        )
        .group_by(t.c.member_account_id)
        .having(
            func.count(distinct(case((t.c.type == "earn", t.c.merchant_id)))) == 1,
            func.count(distinct(case((t.c.type == "redeem", t.c.merchant_id)))) == 1,
        )
        .subquery()
    )


def earn_spend_clusters(session: Session, bounds: Day) -> list[Finding]:
    """Pairs of merchants where far more members earn only at the one and spend only at the
    other than the coalition's other such members would predict."""
    single = _single_shop_members(bounds)
    pairs = session.execute(
        select(
            single.c.earned_at,
            single.c.spent_at,
            func.count().label("members"),
            func.sum(single.c.spent_today).label("spent_today"),
        ).group_by(single.c.earned_at, single.c.spent_at)
    ).all()
    everyone = sum(int(p.members) for p in pairs)
    earned: dict[int, int] = {}
    spent: dict[int, int] = {}
    for p in pairs:
        earned[p.earned_at] = earned.get(p.earned_at, 0) + int(p.members)
        spent[p.spent_at] = spent.get(p.spent_at, 0) + int(p.members)
    seen = _recently_alerted(session, "earn_spend_cluster", bounds.day, CLUSTER_WINDOW)
    flagged = []
    for p in pairs:
        count = int(p.members)
        if p.earned_at == p.spent_at or count < CLUSTER_MIN_MEMBERS or not p.spent_today:
            continue
        # The norm is the other members: expected = (A's others) * (B's others) / others.
        others = everyone - count
        expected_times_others = (earned[p.earned_at] - count) * (spent[p.spent_at] - count)
        if count * others < CLUSTER_LIFT * expected_times_others:
            continue
        subject = f"earn_spend_cluster:{p.earned_at}:{p.spent_at}"
        if subject in seen:
            continue
        flagged.append((p, subject, others, expected_times_others))
    names = _merchant_names(session, [x for p, *_ in flagged for x in (p.earned_at, p.spent_at)])
    found = []
    for p, subject, others, expected_times_others in flagged:
        accounts_of_pair = select(single.c.member_account_id).where(
            single.c.earned_at == p.earned_at, single.c.spent_at == p.spent_at
        )
        shown = session.execute(
            select(members.c.public_id)
            .join(accounts, accounts.c.member_id == members.c.id)
            .where(accounts.c.id.in_(accounts_of_pair))
            .order_by(members.c.public_id)
            .limit(EVIDENCE_LIMIT)
        ).scalars()
        expected = (
            Decimal(expected_times_others) / Decimal(others) if others else Decimal(0)
        ).quantize(Decimal("0.01"), ROUND_HALF_UP)
        found.append(
            Finding(
                "earn_spend_cluster",
                f"{subject}:{bounds.day.isoformat()}",
                p.spent_at,
                None,
                {
                    "earn_merchant": names[p.earned_at],
                    "spend_merchant": names[p.spent_at],
                    "from": (bounds.end - CLUSTER_WINDOW).isoformat(),
                    "to": bounds.end.isoformat(),
                    "members_count": int(p.members),
                    "expected_members": str(expected),
                    "single_shop_members": everyone,
                    "members": list(shown),
                    "thresholds": {
                        "window_days": CLUSTER_WINDOW.days,
                        "min_members": CLUSTER_MIN_MEMBERS,
                        "lift": CLUSTER_LIFT,
                    },
                },
            )
        )
    return found


def _events_of_day(session: Session, bounds: Day, kinds: tuple[str, ...]) -> list[Any]:
    return list(
        session.execute(
            select(
                fraud_events.c.kind,
                fraud_events.c.member_id,
                fraud_events.c.merchant_id,
                fraud_events.c.details,
                fraud_events.c.at,
                members.c.public_id.label("member"),
            )
            .outerjoin(members, members.c.id == fraud_events.c.member_id)
            .where(
                fraud_events.c.kind.in_(kinds),
                fraud_events.c.at >= bounds.start,
                fraud_events.c.at < bounds.end,
            )
            .order_by(fraud_events.c.id)
        ).all()
    )


def wrong_codes(session: Session, bounds: Day) -> list[Finding]:
    """Merchants where many wrong redemption codes were typed on the day, or several members
    were locked out by them."""
    e = fraud_events
    lockouts = func.sum(case((e.c.kind == "code_lockout", 1), else_=0))
    rows = session.execute(
        select(
            e.c.merchant_id,
            func.count().label("wrong"),
            lockouts.label("lockouts"),
            func.count(distinct(e.c.member_id)).label("members"),
        )
        .where(
            e.c.kind.in_(("wrong_code", "code_lockout")),
            e.c.merchant_id.is_not(None),
            e.c.at >= bounds.start,
            e.c.at < bounds.end,
        )
        .group_by(e.c.merchant_id)
        .having((func.count() >= WRONG_CODES_MIN) | (lockouts >= LOCKOUTS_MIN))
    ).all()
    if not rows:
        return []
    names = _merchant_names(session, (row.merchant_id for row in rows))
    events = _events_of_day(session, bounds, ("wrong_code", "code_lockout"))
    found = []
    for row in rows:
        mine = [ev for ev in events if ev.merchant_id == row.merchant_id]
        per_member: dict[str, int] = {}
        for ev in mine:
            per_member[ev.member] = per_member.get(ev.member, 0) + 1
        found.append(
            Finding(
                "wrong_codes",
                f"wrong_codes:{row.merchant_id}:{bounds.day.isoformat()}",
                row.merchant_id,
                None,
                {
                    "merchant": names[row.merchant_id],
                    "wrong_codes": int(row.wrong),
                    "lockouts": int(row.lockouts),
                    "members_count": int(row.members),
                    "members": [
                        {"member": m, "wrong_codes": n}
                        for m, n in sorted(per_member.items(), key=lambda x: (-x[1], x[0]))
                    ][:EVIDENCE_LIMIT],
                    "first_at": mine[0].at.isoformat(),
                    "last_at": mine[-1].at.isoformat(),
                    "thresholds": {
                        "min_wrong_codes": WRONG_CODES_MIN,
                        "min_lockouts": LOCKOUTS_MIN,
                    },
                },
            )
        )
    return found


def velocity(session: Session, bounds: Day) -> list[Finding]:
    """The day's spendings refused by a velocity limit: one alert per member (its daily limit)
    and per merchant (its hourly limit), with the refusals' figures."""
    events = _events_of_day(session, bounds, ("member_velocity", "merchant_velocity"))
    groups: dict[tuple[str, int], list[Any]] = {}
    for ev in events:
        subject = ev.member_id if ev.kind == "member_velocity" else ev.merchant_id
        groups.setdefault((ev.kind, subject), []).append(ev)
    names = _merchant_names(session, (ev.merchant_id for ev in events))
    found = []
    for (kind, subject), refused in groups.items():
        last = refused[-1]
        found.append(
            Finding(
                "velocity",
                f"velocity:{kind}:{subject}:{bounds.day.isoformat()}",
                last.merchant_id if kind == "merchant_velocity" else None,
                last.member_id if kind == "member_velocity" else None,
                {
                    "limit": kind.removesuffix("_velocity"),
                    "merchant": names.get(last.merchant_id)
                    if kind == "merchant_velocity"
                    else None,
                    "member": last.member if kind == "member_velocity" else None,
                    "refusals": len(refused),
                    "limit_points": last.details.get("limit_points"),
                    "window_hours": last.details.get("window_hours"),
                    "asked_points": sum(int(ev.details.get("asked_points", 0)) for ev in refused),
                    "refused": [
                        {
                            "at": ev.at.isoformat(),
                            "member": ev.member,
                            "merchant": (names.get(ev.merchant_id) or {}).get("id"),
                            "asked_points": ev.details.get("asked_points"),
                            "spent_points": ev.details.get("spent_points"),
                        }
                        for ev in refused[:EVIDENCE_LIMIT]
                    ],
                },
            )
        )
    return found
