"""The insights' figures (SPEC 2, Insights), each one set-based SQL over the ledger's tables
(transactions, lot consumptions) and settlement's final runs, the same on PostgreSQL and SQLite.

A scope is one merchant (its own API, its portal tab, the operator's partner picker) or the whole
coalition (`merchant_id=None`). A window is a range of business dates in the coalition's time
zone; months are the calendar months it touches, told apart in SQL by a CASE over their UTC
boundaries (so no time-zone function is needed on SQLite). The definitions are decisions 334-341
(docs/decisions.md); each function's docstring states its own.

The merchant's figures read every merchant's purchases (a member won through the coalition is one
who bought elsewhere first), so they run as the system tenant and name the merchant in every
query; what leaves this module about other shops is only counts of this merchant's own customers
(decision 335)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import Numeric, and_, case, cast, exists, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from coalition import clock, economics, tenancy
from coalition.database import table
from coalition.economics import Terms
from coalition.errors import InvalidRequest, NotFound
from coalition.ledger.models import Account, LotConsumption, Transaction
from coalition.members.models import Member
from insights.models import InsightSnapshot
from merchants.models import Merchant
from settlement import reports
from settlement.models import SettlementFlow, SettlementPosition, SettlementRun
from settlement.runs import settled_between

transactions = table(Transaction)
accounts = table(Account)
members = table(Member)
merchants = table(Merchant)
consumptions = table(LotConsumption)
runs = table(SettlementRun)
positions = table(SettlementPosition)
flows = table(SettlementFlow)
snapshots = table(InsightSnapshot)

COALITION = "coalition"

# Bounds (STYLE: a bound on every list): a window is at most 24 months, so a cohort triangle is
# at most 24 x 24 cells and the month CASE at most 23 branches (decision 334).
MAX_MONTHS = 24
DEFAULT_MONTHS = 12
# The concentration curve's points: the top 10 %, 20 %, ... 100 % of customers (decision 338).
PERCENTILES = tuple(range(10, 101, 10))
TOP_SHARE_PERCENT = 20
SHARE = Decimal("0.0001")


@dataclass(frozen=True)
class Window:
    """Business dates first..last (inclusive), as the UTC instants [start, end), and the first
    day of every calendar month the range touches."""

    first: date
    last: date
    start: datetime
    end: datetime
    months: tuple[date, ...]


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def window(first: date | None, last: date | None, today: date, zone: str) -> Window:
    """The window a request names (decision 334): by default the 12 calendar months to `today`
    (the first day of the month 11 months back, to today). Refused: `from` after `to`, or a
    range that touches more than 24 months."""
    if last is None:
        last = (
            today
            if first is None
            else min(today, _add_months(first, DEFAULT_MONTHS) - timedelta(days=1))
        )
    if first is None:
        first = _add_months(_month_start(last), -(DEFAULT_MONTHS - 1))
    if first > last:
        raise InvalidRequest(
            "`from` is after `to`.", errors={"from": ["must be on or before `to`"]}
        )
    months = [_month_start(first)]
    while _next_month(months[-1]) <= last:
        months.append(_next_month(months[-1]))
        if len(months) > MAX_MONTHS:
            raise InvalidRequest(
                f"The range touches more than {MAX_MONTHS} months.",
                errors={"to": [f"must be within {MAX_MONTHS} calendar months of `from`"]},
            )
    return Window(
        first=first,
        last=last,
        start=clock.end_of_business_date(first - timedelta(days=1), zone),
        end=clock.end_of_business_date(last, zone),
        months=tuple(months),
    )


def _add_months(day: date, count: int) -> date:
    index = day.year * 12 + day.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def _month_index(moment: Any, span: Window, zone: str) -> ColumnElement[int]:
    """Which of the window's months (0-based) a UTC instant falls in, in SQL."""
    bounds = [
        clock.end_of_business_date(month - timedelta(days=1), zone) for month in span.months[1:]
    ]
    if not bounds:
        return literal(0)
    return case(
        *((moment < bound, index) for index, bound in enumerate(bounds)),
        else_=len(bounds),
    )


def _purchases(merchant_id: int | None, span: Window) -> list[ColumnElement[bool]]:
    """A purchase (an `earn` transaction) in the window, at the merchant (any, for None)."""
    where = [
        transactions.c.type == "earn",
        transactions.c.created_at >= span.start,
        transactions.c.created_at < span.end,
    ]
    if merchant_id is not None:
        where.append(transactions.c.merchant_id == merchant_id)
    return where


def _ratio(part: int, whole: int) -> str:
    if not whole:
        return "0.0000"
    return str((Decimal(part) / Decimal(whole)).quantize(SHARE, rounding=ROUND_HALF_EVEN))


# The figures -----------------------------------------------------------------------------------


def sales(session: Session, merchant_id: int | None, span: Window, terms: Terms) -> dict[str, Any]:
    """Purchases in the window: how many, their amounts' sum (gross of refunds), the members who
    made them (customers), those with two or more (repeat customers) and their share of the
    customers (the repeat-purchase rate), and the average basket: sales / purchases in major
    units, rounded half-even to the currency's minor unit (decision 336)."""
    where = _purchases(merchant_id, span)
    count, amount, customers = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(transactions.c.amount_minor), 0),
            func.count(transactions.c.member_account_id.distinct()),
        ).where(*where)
    ).one()
    repeaters = (
        select(transactions.c.member_account_id)
        .where(*where)
        .group_by(transactions.c.member_account_id)
        .having(func.count() >= 2)
        .subquery()
    )
    repeat = int(session.execute(select(func.count()).select_from(repeaters)).scalar_one())
    digits = economics.MINOR_UNIT_DIGITS[terms.currency]
    basket = (
        (Decimal(int(amount)) / count)
        .scaleb(-digits)
        .quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN)
        if count
        else Decimal(0).quantize(Decimal(1).scaleb(-digits))
    )
    return {
        "purchases": int(count),
        "sales": {"amount": int(amount), "currency": terms.currency},
        "customers": int(customers),
        "repeat_customers": repeat,
        "repeat_rate": _ratio(repeat, int(customers)),
        "average_basket": {"amount": format(basket, "f"), "currency": terms.currency},
    }


def _firsts(merchant_id: int | None, span: Window, *, per_merchant: bool) -> Any:
    """Members whose first purchase ever (at the merchant; per merchant, or anywhere in the
    coalition when `per_merchant` is false) falls in the window, with its instant: the window's
    earliest purchase, when no purchase of the same scope came before the window."""
    inside = _purchases(merchant_id, span)
    earlier = transactions.alias("earlier")
    before = [
        earlier.c.type == "earn",
        earlier.c.member_account_id == transactions.c.member_account_id,
        earlier.c.created_at < span.start,
    ]
    keys = [transactions.c.member_account_id]
    if per_merchant:
        before.append(earlier.c.merchant_id == transactions.c.merchant_id)
        keys.insert(0, transactions.c.merchant_id)
    return (
        select(*keys, func.min(transactions.c.created_at).label("first_at"))
        .where(*inside, ~exists().where(*before))
        .group_by(*keys)
        .subquery("firsts")
    )


def won(session: Session, merchant_id: int | None, span: Window) -> dict[str, int]:
    """Members won through the coalition (decision 335): their first purchase ever at the
    merchant falls in the window, and before it they had joined at another partner (enrolled
    by it) or bought at another partner. `came_back`: those of them who bought at the merchant
    again after that first purchase, within the window. For the coalition, the sum over
    partners (a member won by two partners counts twice)."""
    firsts = _firsts(merchant_id, span, per_merchant=True)
    elsewhere = transactions.alias("elsewhere")
    again = transactions.alias("again")
    bought_elsewhere = exists().where(
        elsewhere.c.type == "earn",
        elsewhere.c.member_account_id == firsts.c.member_account_id,
        elsewhere.c.merchant_id != firsts.c.merchant_id,
        elsewhere.c.created_at < firsts.c.first_at,
    )
    joined_elsewhere = and_(
        members.c.enrolled_by_merchant_id.is_not(None),
        members.c.enrolled_by_merchant_id != firsts.c.merchant_id,
    )
    came_back = exists().where(
        again.c.type == "earn",
        again.c.member_account_id == firsts.c.member_account_id,
        again.c.merchant_id == firsts.c.merchant_id,
        again.c.created_at > firsts.c.first_at,
        again.c.created_at < span.end,
    )
    rows = (
        select(firsts.c.member_account_id, case((came_back, 1), else_=0).label("back"))
        .select_from(firsts)
        .join(accounts, accounts.c.id == firsts.c.member_account_id)
        .join(members, members.c.id == accounts.c.member_id)
        .where(joined_elsewhere | bought_elsewhere)
        .subquery()
    )
    count, back = session.execute(
        select(func.count(), func.coalesce(func.sum(rows.c.back), 0))
    ).one()
    return {"members": int(count), "came_back": int(back)}


def cohorts(
    session: Session, merchant_id: int | None, span: Window, zone: str
) -> list[dict[str, Any]]:
    """Cohort retention (decision 337): members grouped by the month of their first purchase ever
    (at the merchant, or anywhere for the coalition) when that falls in the window; for each
    cohort, how many of its members bought (there) in its first month, the month after, ... up
    to the window's last month: a triangle."""
    firsts = _firsts(merchant_id, span, per_merchant=merchant_id is not None)
    cohort = _month_index(firsts.c.first_at, span, zone).label("cohort")
    active_month = _month_index(transactions.c.created_at, span, zone)
    activity = (
        select(transactions.c.member_account_id.label("member"), active_month.label("month"))
        .where(*_purchases(merchant_id, span))
        .distinct()
        .subquery("activity")
    )
    starts = select(firsts.c.member_account_id.label("member"), cohort).subquery("starts")
    counts = session.execute(
        select(starts.c.cohort, activity.c.month, func.count())
        .join(activity, activity.c.member == starts.c.member)
        .group_by(starts.c.cohort, activity.c.month)
    ).all()
    cells: dict[int, dict[int, int]] = defaultdict(dict)
    for start, month, count in counts:
        cells[int(start)][int(month)] = int(count)
    triangle = []
    for index, month in enumerate(span.months):
        row = cells.get(index, {})
        size = row.get(index, 0)
        if not size:
            continue
        triangle.append(
            {
                "month": month.strftime("%Y-%m"),
                "members": size,
                "active": [row.get(later, 0) for later in range(index, len(span.months))],
            }
        )
    return triangle


def concentration(session: Session, merchant_id: int | None, span: Window) -> dict[str, Any]:
    """The share of sales from the top customers (decision 338): customers ranked by their sales
    in the window, biggest first (ties by account id); the top p % are the first ceil(p x n / 100)
    of the n customers; `top_20_share` is their sales over all sales, and the curve gives the
    same for p = 10, 20, ... 100, shares rounded half-even to 4 places."""
    totals = (
        select(
            transactions.c.member_account_id.label("member"),
            func.sum(func.coalesce(transactions.c.amount_minor, 0)).label("total"),
        )
        .where(*_purchases(merchant_id, span))
        .group_by(transactions.c.member_account_id)
        .subquery("totals")
    )
    count, whole = session.execute(
        select(func.count(), func.coalesce(func.sum(totals.c.total), 0))
    ).one()
    count, whole = int(count), int(whole)
    ranks = {p: (p * count + 99) // 100 for p in (*PERCENTILES, TOP_SHARE_PERCENT)}
    order = (totals.c.total.desc(), totals.c.member)
    ranked = select(
        func.row_number().over(order_by=order).label("rank"),
        func.sum(totals.c.total).over(order_by=order, rows=(None, 0)).label("running"),
    ).subquery("ranked")
    wanted = sorted({rank for rank in ranks.values() if rank > 0})
    running = (
        dict(
            session.execute(
                select(ranked.c.rank, ranked.c.running).where(ranked.c.rank.in_(wanted))
            ).all()
        )
        if wanted
        else {}
    )

    def share(percent: int) -> str:
        rank = ranks[percent]
        return _ratio(int(running[rank]), whole) if rank else "0.0000"

    return {
        "customers": count,
        "top_20_share": share(TOP_SHARE_PERCENT) if whole else "0.0000",
        "curve": [
            {"customers_percent": 0, "sales_share": "0.0000"},
            *(
                {"customers_percent": p, "sales_share": share(p) if whole else "0.0000"}
                for p in PERCENTILES
            ),
        ],
    }


def points(session: Session, merchant_id: int | None, span: Window) -> dict[str, int]:
    """Points issued (on purchases at the merchant: its own and the operator's bonuses with
    them) and redeemed there net of reversals, in the window, as the dashboard counts them
    (decision 339)."""
    where = [
        transactions.c.created_at >= span.start,
        transactions.c.created_at < span.end,
        transactions.c.type.in_(("earn", "redeem", "reversal")),
    ]
    if merchant_id is not None:
        where.append(transactions.c.merchant_id == merchant_id)
    sums = dict(
        session.execute(
            select(transactions.c.type, func.coalesce(func.sum(transactions.c.points), 0))
            .where(*where)
            .group_by(transactions.c.type)
        ).all()
    )
    return {
        "issued": int(sums.get("earn", 0)),
        "redeemed": int(sums.get("redeem", 0)) - int(sums.get("reversal", 0)),
    }


def net_by_month(
    session: Session, merchant_id: int | None, span: Window, terms: Terms
) -> list[dict[str, Any]]:
    """The net position by month (decision 340): settlement's final positions of the window's
    settled days added up per calendar month, exact (statements round once, to the cent):
    `owed` what the merchant owes the operator, `receivable` what it is owed, `net` the
    difference (positive: it pays). For the coalition, every merchant's summed."""
    where = [settled_between(span.first, span.last)]
    if merchant_id is not None:
        where.append(positions.c.merchant_id == merchant_id)
    postgres = session.get_bind().dialect.name == "postgresql"
    month = (
        func.to_char(runs.c.business_date, "YYYY-MM")
        if postgres
        else func.strftime("%Y-%m", runs.c.business_date)
    )
    sums: dict[str, list[Decimal]] = {
        first.strftime("%Y-%m"): [Decimal(0), Decimal(0), Decimal(0)] for first in span.months
    }
    amounts = (positions.c.owed, positions.c.receivable, positions.c.net)
    if postgres:  # exact decimal sums in the database (a year of 100 merchants: 36,500 rows)
        rows: Any = session.execute(
            select(month, *(func.sum(cast(a, Numeric)) for a in amounts))
            .join(runs, runs.c.id == positions.c.run_id)
            .where(*where)
            .group_by(month)
        )
    else:  # SQLite has no exact decimal: the strings are added up here
        rows = session.execute(
            select(month, *amounts).join(runs, runs.c.id == positions.c.run_id).where(*where)
        )
    for key, owed, receivable, net in rows:
        cell = sums[key]
        cell[0] += Decimal(owed)
        cell[1] += Decimal(receivable)
        cell[2] += Decimal(net)
    digits = economics.MINOR_UNIT_DIGITS[terms.currency]
    return [
        {
            "month": month,
            "owed": _decimal_text(owed, digits),
            "receivable": _decimal_text(receivable, digits),
            "net": _decimal_text(net, digits),
            "currency": terms.currency,
        }
        for month, (owed, receivable, net) in sums.items()
    ]


def _decimal_text(amount: Decimal, digits: int) -> str:
    exact = amount.normalize()
    if exact.as_tuple().exponent > -digits:  # type: ignore[operator]
        exact = exact.quantize(Decimal(1).scaleb(-digits))
    return format(exact, "f")


def figures(session: Session, merchant_id: int | None, span: Window, zone: str) -> dict[str, Any]:
    """Every figure of one scope in the window (as the system tenant: see the module's note)."""
    terms = economics.coalition_terms(session, span.last)
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return {
            "from": span.first,
            "to": span.last,
            "currency": terms.currency,
            "won": won(session, merchant_id, span),
            **sales(session, merchant_id, span, terms),
            "cohorts": cohorts(session, merchant_id, span, zone),
            "concentration": concentration(session, merchant_id, span),
            "points": points(session, merchant_id, span),
            "net_by_month": net_by_month(session, merchant_id, span, terms),
        }


# The operator's extras -------------------------------------------------------------------------


def merchant_id_of(session: Session, public_id: str) -> tuple[int, str, str]:
    """A partner's row id, public id and name; NotFound for an unknown one."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        row = session.execute(
            select(merchants.c.id, merchants.c.public_id, merchants.c.name).where(
                merchants.c.public_id == public_id
            )
        ).one_or_none()
    if row is None:
        raise NotFound("No such merchant.")
    return int(row.id), row.public_id, row.name


def partners(session: Session) -> list[tuple[str, str]]:
    """Every merchant that was ever approved, (public id, name), by name: the partner picker."""
    return [
        (row.public_id, row.name)
        for row in session.execute(
            select(merchants.c.public_id, merchants.c.name)
            .where(merchants.c.status.in_(("active", "suspended")))
            .order_by(merchants.c.name, merchants.c.id)
        )
    ]


def breakage(session: Session, span: Window, terms: Terms) -> dict[str, Any]:
    """Points that expired in the window, and their value at the window's point value."""
    expired = int(
        session.execute(
            select(func.coalesce(func.sum(consumptions.c.points), 0)).where(
                consumptions.c.kind == "expire",
                consumptions.c.created_at >= span.start,
                consumptions.c.created_at < span.end,
            )
        ).scalar_one()
    )
    return {
        "points": expired,
        "value": {"amount": economics.value_minor(expired, terms), "currency": terms.currency},
    }


def balance_of_trade(session: Session, span: Window, terms: Terms) -> list[dict[str, Any]]:
    """Each partner's balance of trade in the window (decision 341), from settlement's flows of
    the window's settled days: `imported` its redemptions of points issued elsewhere (by other
    partners or the operator), `exported` its own points redeemed elsewhere, with their value
    as settlement priced them; `balance` is imported less exported (positive: the coalition
    brings it spending)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    pair = (flows.c.issuer_merchant_id, flows.c.redeemer_merchant_id)
    travelled = (
        (flows.c.issuer_merchant_id != flows.c.redeemer_merchant_id)
        | flows.c.issuer_merchant_id.is_(None)
        | flows.c.redeemer_merchant_id.is_(None)
    )
    if postgres:  # exact decimal sums in the database
        rows: Any = session.execute(
            select(*pair, func.sum(flows.c.points), func.sum(cast(flows.c.amount, Numeric)))
            .select_from(flows)
            .join(runs, runs.c.id == flows.c.run_id)
            .where(settled_between(span.first, span.last), travelled)
            .group_by(*pair)
        )
    else:  # SQLite has no exact decimal: the strings are added up here
        rows = session.execute(
            select(*pair, flows.c.points, flows.c.amount)
            .select_from(flows)
            .join(runs, runs.c.id == flows.c.run_id)
            .where(settled_between(span.first, span.last), travelled)
        )
    trade: dict[int, list[Any]] = defaultdict(lambda: [0, Decimal(0), 0, Decimal(0)])
    for issuer, redeemer, total, amount in rows:
        if issuer == redeemer:
            continue
        if redeemer is not None:
            trade[redeemer][0] += int(total)
            trade[redeemer][1] += Decimal(amount)
        if issuer is not None:
            trade[issuer][2] += int(total)
            trade[issuer][3] += Decimal(amount)
    names = {
        row.id: (row.public_id, row.name)
        for row in session.execute(
            select(merchants.c.id, merchants.c.public_id, merchants.c.name).where(
                merchants.c.id.in_(list(trade))
            )
        )
    }
    digits = economics.MINOR_UNIT_DIGITS[terms.currency]
    return [
        {
            "merchant": {"id": names[key][0], "name": names[key][1]},
            "imported_points": imported,
            "imported_value": _decimal_text(imported_value, digits),
            "exported_points": exported,
            "exported_value": _decimal_text(exported_value, digits),
            "balance_points": imported - exported,
            "balance_value": _decimal_text(imported_value - exported_value, digits),
            "currency": terms.currency,
        }
        for key, (imported, imported_value, exported, exported_value) in sorted(
            trade.items(), key=lambda item: (names[item[0]][1], item[0])
        )
    ]


def coalition_part(session: Session, span: Window, zone: str) -> dict[str, Any]:
    """What the nightly snapshot keeps (decision 342): the coalition's figures, breakage in the
    range and the balance of trade, as plain JSON (dates as ISO text)."""
    terms = economics.coalition_terms(session, span.last)
    coalition = figures(session, None, span, zone)
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return {
            "coalition": coalition | {"from": span.first.isoformat(), "to": span.last.isoformat()},
            "breakage": breakage(session, span, terms),
            "balance_of_trade": balance_of_trade(session, span, terms),
        }


def snapshot(session: Session, span: Window) -> tuple[dict[str, Any], datetime] | None:
    """The nightly snapshot of exactly this range, and when it was computed; None if none."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        row = session.execute(
            select(snapshots.c.figures, snapshots.c.computed_at).where(
                snapshots.c.scope == COALITION,
                snapshots.c.first == span.first,
                snapshots.c.last == span.last,
            )
        ).one_or_none()
    return None if row is None else (row.figures, row.computed_at)


def operator_view(
    session: Session, span: Window, zone: str, merchant: str | None, now: datetime
) -> dict[str, Any]:
    """The coalition's figures (from the night's snapshot when it covers exactly this range,
    else computed now), one partner's when `merchant` names one, the liability now, breakage
    in the range and to date, and each partner's balance of trade."""
    partner = None
    if merchant:
        merchant_id, public_id, name = merchant_id_of(session, merchant)
        partner = {"merchant": {"id": public_id, "name": name}} | figures(
            session, merchant_id, span, zone
        )
    kept = snapshot(session, span)
    if kept is None:
        part, as_of = coalition_part(session, span, zone), None
    else:
        part, as_of = kept
    with tenancy.acting_as(tenancy.SYSTEM, session):
        today_terms = economics.coalition_terms(session, clock.business_date(now, zone))
        owed = reports.liability(session, today_terms)
    return {
        **part,
        "coalition": part["coalition"]
        | {
            "from": date.fromisoformat(part["coalition"]["from"]),
            "to": date.fromisoformat(part["coalition"]["to"]),
        },
        "as_of": as_of,
        "partner": partner,
        "liability": {
            "outstanding_points": owed["outstanding_points"],
            "value": owed["value"],
            "breakage_to_date": owed["breakage"],
        },
    }
