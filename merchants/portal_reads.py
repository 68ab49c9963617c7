"""What the merchant portal reads, without writing: the signed-in merchant, the dashboard's
figures, its transactions by filter (a page, or every row for a CSV), a member's lines at this
merchant, and its OAuth clients. Every query names the merchant (the second wall, with the
tenant the page entered)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, cast, func, select
from sqlalchemy.orm import Session

from coalition import clock, tenancy
from coalition.database import table
from coalition.ledger import reads as ledger_reads
from coalition.ledger.models import Transaction
from coalition.oauth.models import OAuthClient
from merchants.models import Merchant

merchants = table(Merchant)
transactions = table(Transaction)
clients = table(OAuthClient)

CHART_DAYS = 60
CSV_LIMIT = 100_000  # a download is bounded: a wider filter is asked to narrow


@dataclass(frozen=True)
class PortalMerchant:
    id: int
    public_id: str
    name: str
    email: str | None
    status: str
    # The operator's reason when it refused the application (a column the operator console
    # adds); None where there is none.
    reason: str | None
    stripe_account_id: str | None


def _portal_merchant(row: Any) -> PortalMerchant:
    values = row._mapping
    return PortalMerchant(
        id=row.id,
        public_id=row.public_id,
        name=row.name,
        email=row.email,
        status=row.status,
        reason=values.get("refusal_reason") or values.get("refused_reason"),
        stripe_account_id=row.stripe_account_id,
    )


def merchant_by_public_id(session: Session, public_id: str) -> PortalMerchant | None:
    with tenancy.acting_as(tenancy.SYSTEM, session):
        row = session.execute(
            select(merchants).where(merchants.c.public_id == public_id)
        ).one_or_none()
    return None if row is None else _portal_merchant(row)


def merchant_by_email(session: Session, email: str) -> tuple[PortalMerchant, str | None] | None:
    """The merchant that applied with `email` (any letter case) and its password hash."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        row = session.execute(
            select(merchants).where(merchants.c.email == email.strip().lower())
        ).one_or_none()
    return None if row is None else (_portal_merchant(row), row.password_hash)


# The dashboard -----------------------------------------------------------------------------------


def _start_of(day: date, zone: str) -> datetime:
    return clock.end_of_business_date(day - timedelta(days=1), zone)


def month_window(now: datetime, zone: str) -> tuple[datetime, datetime]:
    today = clock.business_date(now, zone)
    return _start_of(today.replace(day=1), zone), now


def _sum(session: Session, merchant_id: int, kind: str, start: datetime, end: datetime) -> int:
    total = session.execute(
        select(func.coalesce(func.sum(transactions.c.points), 0)).where(
            transactions.c.merchant_id == merchant_id,
            transactions.c.type == kind,
            transactions.c.created_at >= start,
            transactions.c.created_at < end,
        )
    ).scalar_one()
    return int(total)


def members_won(session: Session, merchant_id: int, start: datetime, end: datetime) -> int:
    """Members whose first transaction at this merchant falls in [start, end): new customers
    the programme brought (decision 150)."""
    firsts = (
        select(transactions.c.member_account_id)
        .where(transactions.c.merchant_id == merchant_id)
        .group_by(transactions.c.member_account_id)
        .having(func.min(transactions.c.created_at) >= start)
        .having(func.min(transactions.c.created_at) < end)
        .subquery()
    )
    return int(session.execute(select(func.count()).select_from(firsts)).scalar_one())


def dashboard(session: Session, merchant_id: int, now: datetime, zone: str) -> dict[str, Any]:
    """This month's points issued (earned at its tills) and redeemed (net of reversals), the
    members won, and the last 60 days, day by day: (day, issued, redeemed)."""
    start, end = month_window(now, zone)
    redeemed = _sum(session, merchant_id, "redeem", start, end)
    reversed_ = _sum(session, merchant_id, "reversal", start, end)
    return {
        "issued": _sum(session, merchant_id, "earn", start, end),
        "redeemed": max(redeemed - reversed_, 0),
        "members_won": members_won(session, merchant_id, start, end),
        "days": daily(session, merchant_id, now, zone),
    }


def daily(
    session: Session, merchant_id: int, now: datetime, zone: str, count: int = CHART_DAYS
) -> list[tuple[date, int, int]]:
    """The last `count` days to today (the coalition's time zone): points earned at this
    merchant's tills and redeemed there (net of reversals), each day."""
    today = clock.business_date(now, zone)
    first = today - timedelta(days=count - 1)
    start = _start_of(first, zone)
    wanted = transactions.c.type.in_(("earn", "redeem", "reversal"))
    where = (
        transactions.c.merchant_id == merchant_id,
        transactions.c.created_at >= start,
        transactions.c.created_at < now,
        wanted,
    )
    totals: dict[date, list[int]] = {first + timedelta(days=i): [0, 0] for i in range(count)}
    if session.get_bind().dialect.name == "postgresql":
        local_day = cast(func.timezone(zone, transactions.c.created_at), Date)
        rows: Any = session.execute(
            select(local_day, transactions.c.type, func.sum(transactions.c.points))
            .where(*where)
            .group_by(local_day, transactions.c.type)
        )
    else:  # SQLite (development): bucketed here
        rows = (
            (moment.astimezone(ZoneInfo(zone)).date(), kind, points)
            for moment, kind, points in session.execute(
                select(transactions.c.created_at, transactions.c.type, transactions.c.points).where(
                    *where
                )
            )
        )
    for day, kind, points in rows:
        if day not in totals:
            continue
        if kind == "earn":
            totals[day][0] += int(points)
        elif kind == "redeem":
            totals[day][1] += int(points)
        else:
            totals[day][1] -= int(points)
    return [(day, issued, max(redeemed, 0)) for day, (issued, redeemed) in totals.items()]


# Transactions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransactionFilter:
    since: date | None = None
    until: date | None = None  # inclusive, as a person reads "to"
    type: str | None = None
    member_account_id: int | None = None


def _statement(merchant_id: int, found: TransactionFilter, zone: str) -> Any:
    return ledger_reads.merchant_transactions(
        merchant_id,
        member_account_id=found.member_account_id,
        type=found.type,
        since=_start_of(found.since, zone) if found.since else None,
        until=_start_of(found.until + timedelta(days=1), zone) if found.until else None,
    ).order_by(ledger_reads.transactions.c.id.desc())


def transactions_page(
    session: Session,
    merchant_id: int,
    found: TransactionFilter,
    number: int,
    size: int,
    zone: str,
) -> tuple[list[Any], bool]:
    """One page of the merchant's transactions, newest first, and whether there is another."""
    rows = session.execute(
        _statement(merchant_id, found, zone).limit(size + 1).offset((number - 1) * size)
    ).all()
    return list(rows[:size]), len(rows) > size


def transactions_all(
    session: Session, merchant_id: int, found: TransactionFilter, zone: str
) -> Iterator[Any]:
    """Every transaction of the filter (at most CSV_LIMIT), newest first, read in batches."""
    statement = _statement(merchant_id, found, zone).limit(CSV_LIMIT)
    yield from session.execute(statement.execution_options(yield_per=1000))


def member_lines(
    session: Session, merchant_id: int, member_account_id: int, limit: int = 10
) -> list[Any]:
    """A member's most recent transactions at this merchant (none of other shops)."""
    statement = ledger_reads.merchant_transactions(
        merchant_id, member_account_id=member_account_id
    ).order_by(ledger_reads.transactions.c.id.desc())
    return list(session.execute(statement.limit(limit)).all())


# Clients -----------------------------------------------------------------------------------------


def merchant_clients(session: Session, merchant_id: int) -> list[Any]:
    """The merchant's OAuth clients, newest first."""
    return list(
        session.execute(
            select(
                clients.c.client_id,
                clients.c.name,
                clients.c.scopes,
                clients.c.redirect_uris,
                clients.c.disabled,
                clients.c.revoked_at,
                clients.c.created_at,
            )
            .where(clients.c.merchant_id == merchant_id, clients.c.kind == "merchant")
            .order_by(clients.c.id.desc())
        ).all()
    )
