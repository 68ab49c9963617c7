"""Read-only views of a member for the API (SPEC 3.3 look-up, 3.4 member API): what a till sees
of a card, and what the member sees of itself. No locks: a read sees the last committed state.

Every query is scoped by the member itself (its id or its points account), whatever row-level
security would also allow: the application is the first wall (tenancy.py)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy import Select, bindparam, case, column, func, select
from sqlalchemy import table as core_table
from sqlalchemy.orm import Session

from coalition import clock, economics
from coalition.database import Hot, UTCDateTime
from coalition.database import table as table_of
from coalition.errors import NotFound
from coalition.ledger.lots import pending as lot_pending
from coalition.ledger.models import Account, Lot, Transaction
from coalition.ledger.reads import held_points_of
from coalition.members import cards, codes, tiers
from coalition.members.models import Member
from coalition.members.services import FoundMember, address, find_member

members = table_of(Member)
accounts = table_of(Account)
lots = table_of(Lot)
transactions = table_of(Transaction)
# The coalition's directory of merchants, named rather than imported: the core does not depend
# on the `merchants` package (STYLE, dependencies point inward). Not tenant-restricted.
merchants = core_table("merchants", column("id"), column("public_id"), column("name"))

# Bounds on what one answer carries (TIGER_STYLE).
MAX_EXPIRING_DATES = 12  # the soonest expiry dates shown
EXPIRY_SCAN = 1000  # distinct expiry instants read to build them
MAX_BY_MERCHANT = 500  # merchants listed in `by_merchant`


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def card_view(session: Session, card_or_id: str, now: datetime) -> dict[str, Any]:
    """A member as any partner's till sees it (SPEC 3.3): id, masked card, tier, balance and
    available points; nothing of other shops, no contact details. One statement: this read is
    the hot path of a till, so it is built once (`Hot`). Unknown or blocked: `not_found`."""
    column, ref = address(card_or_id)
    connection = session.connection()
    key = (connection.dialect.name, column)
    statement = _CARD_VIEWS.get(key)
    if statement is None:
        statement = _CARD_VIEWS[key] = _card_view(connection.dialect.name, column)
    rows = statement.rows(connection, {"ref": ref, "now": now})
    if not rows:
        raise NotFound("no such member")
    row = rows[0]
    return {
        "id": row.public_id,
        "card": cards.masked(row.card_number),
        "tier": row.tier,
        "balance": row.balance,
        # SPEC 2: pending points are shown in the balance but cannot be spent at the till.
        "available": max(row.balance - row.pending - int(row.held), 0),
    }


_CARD_VIEWS: dict[tuple[str, str], Hot] = {}


def _card_view(dialect: str, column: str) -> Hot:
    held = held_points_of(accounts.c.id, bindparam("now", type_=UTCDateTime()), dialect)
    return Hot(
        select(
            members.c.public_id,
            members.c.card_number,
            members.c.tier,
            accounts.c.balance,
            accounts.c.pending,
            held.label("held"),
        )
        .join(accounts, accounts.c.member_id == members.c.id)
        .where(members.c[column] == bindparam("ref"), members.c.status == "active")
    )


def _active(session: Session, member_id: int, *columns: Any) -> Any:
    """The member's row (the given columns) if it is active; a blocked member's token reads
    nothing (`not_found`)."""
    row = session.execute(
        select(*columns).where(members.c.id == member_id, members.c.status == "active")
    ).one_or_none()
    if row is None:
        raise NotFound("no such member")
    return row


def profile(session: Session, member_id: int, now: datetime) -> dict[str, Any]:
    """The member's own profile (SPEC 3.4), with its progress to the next tier
    (`tiers.progress`: qualifying spend so far, what the next tier takes, since when)."""
    row = _active(
        session,
        member_id,
        members.c.public_id,
        members.c.card_number,
        members.c.email,
        members.c.name,
        members.c.tier,
    )
    account_id = session.execute(
        select(accounts.c.id).where(accounts.c.member_id == member_id)
    ).scalar_one()
    return {
        "id": row.public_id,
        "card_number": row.card_number,
        "email": row.email,
        "name": row.name,
        "tier": row.tier,
        "tier_progress": tiers.progress(session, account_id, row.tier, now),
    }


def current_code(session: Session, member_id: int, now: datetime) -> dict[str, Any]:
    """The member's rotating redemption code now and when its step ends (SPEC 2). The secret
    itself never leaves the database."""
    row = _active(session, member_id, members.c.totp_secret)
    code, expires_at = codes.current_code(row.totp_secret, now)
    return {"code": code, "expires_at": expires_at}


def expiring(session: Session, account_id: int, zone: str) -> list[dict[str, Any]]:
    """Open lots grouped by the business date they expire on (in the coalition's zone), soonest
    first, at most MAX_EXPIRING_DATES dates: `{points, expires_at}` where `expires_at` is the
    earliest moment on that date at which some of those points expire.

    The database sums lots per expiry instant (at most EXPIRY_SCAN instants); dates are made
    here, so the grouping is the same on every backend. When the scan is cut short its last
    date may be incomplete and is left out: every date shown is exact."""
    rows = session.execute(
        select(lots.c.expires_at, func.sum(lots.c.remaining).label("points"))
        .where(lots.c.account_id == account_id, lots.c.remaining > 0)
        .group_by(lots.c.expires_at)
        .order_by(lots.c.expires_at)
        .limit(EXPIRY_SCAN + 1)
    ).all()
    dates = []
    for _, same_date in groupby(
        rows[:EXPIRY_SCAN], key=lambda row: clock.business_date(row.expires_at, zone)
    ):
        group = list(same_date)
        dates.append(
            {"points": sum(int(row.points) for row in group), "expires_at": group[0].expires_at}
        )
    if len(rows) > EXPIRY_SCAN:
        dates.pop()
    return dates[:MAX_EXPIRING_DATES]


def pending_dates(session: Session, account_id: int, zone: str) -> list[dict[str, Any]]:
    """SPEC 2, Pending points: the member's pending points grouped by the business date from
    which they are spendable (the day after their window ends: the nightly job confirms them
    then), soonest first, at most MAX_EXPIRING_DATES dates: `{points, spendable_from}`."""
    rows = session.execute(
        select(lots.c.pending_until, func.sum(lots.c.remaining).label("points"))
        .where(lots.c.account_id == account_id, lots.c.remaining > 0, lot_pending())
        .group_by(lots.c.pending_until)
        .order_by(lots.c.pending_until)
        .limit(EXPIRY_SCAN + 1)
    ).all()
    dates: dict[date, int] = {}
    for row in rows[:EXPIRY_SCAN]:
        day = clock.business_date(row.pending_until, zone) + timedelta(days=1)
        dates[day] = dates.get(day, 0) + int(row.points)
    shown = sorted(dates.items())
    if len(rows) > EXPIRY_SCAN:
        shown.pop()
    return [{"points": p, "spendable_from": d} for d, p in shown[:MAX_EXPIRING_DATES]]


def by_merchant(session: Session, account_id: int) -> list[dict[str, Any]]:
    """Per merchant where the member earned or spent: points `earned` there (purchases, less
    what refunds clawed back) and `redeemed` there (redemptions and captured holds, less what
    reversals gave back). Expiry belongs to no merchant and is not counted. By merchant name,
    at most MAX_BY_MERCHANT merchants."""
    kind = transactions.c.type
    points = transactions.c.points
    rows = session.execute(
        select(
            merchants.c.public_id,
            merchants.c.name,
            func.sum(case((kind == "earn", points), (kind == "refund", -points), else_=0)).label(
                "earned"
            ),
            func.sum(
                case((kind == "redeem", points), (kind == "reversal", -points), else_=0)
            ).label("redeemed"),
        )
        .select_from(transactions)
        .join(merchants, merchants.c.id == transactions.c.merchant_id)
        .where(
            transactions.c.member_account_id == account_id,
            kind.in_(("earn", "refund", "redeem", "reversal")),
        )
        .group_by(merchants.c.id, merchants.c.public_id, merchants.c.name)
        .order_by(merchants.c.name, merchants.c.id)
        .limit(MAX_BY_MERCHANT)
    ).all()
    return [
        {
            "merchant": {"id": row.public_id, "name": row.name},
            "earned": int(row.earned),
            "redeemed": int(row.redeemed),
        }
        for row in rows
    ]


def points(session: Session, member_id: int, now: datetime, zone: str) -> dict[str, Any]:
    """The member's own points (SPEC 3.4 `/me/balance`): `points` (the balance, negative only by
    clawback debt), `available` (less active holds and pending points, never below zero),
    `held`, `pending` (SPEC 2: not spendable until confirmed) with when each part becomes
    spendable, `debt`, what expires when, and what it earned and redeemed at each merchant."""
    held = held_points_of(accounts.c.id, now, _dialect(session)).label("held")
    row = session.execute(
        select(accounts.c.id, accounts.c.balance, accounts.c.debt, accounts.c.pending, held)
        .join(members, members.c.id == accounts.c.member_id)
        .where(accounts.c.member_id == member_id, members.c.status == "active")
    ).one_or_none()
    if row is None:
        raise NotFound("no such member")
    held_points = int(row.held)
    return {
        "points": row.balance,
        "available": max(row.balance - row.pending - held_points, 0),
        "held": held_points,
        "pending": row.pending,
        "pending_dates": pending_dates(session, row.id, zone) if row.pending else [],
        "debt": row.debt,
        "expiring": expiring(session, row.id, zone),
        "by_merchant": by_merchant(session, row.id),
    }


def ensure_active(session: Session, member_id: int) -> None:
    _active(session, member_id, members.c.id)


def transactions_of(account_id: int) -> Select[Any]:
    """The member's transactions at every merchant (for `web.api.paginate`, on
    `transactions.c.id`). Scoped by the member's account here, not only by row-level security."""
    return (
        select(
            transactions.c.id,
            transactions.c.public_id,
            transactions.c.type,
            transactions.c.points,
            transactions.c.reason,
            transactions.c.created_at,
            merchants.c.public_id.label("merchant_public_id"),
            merchants.c.name.label("merchant_name"),
        )
        .select_from(transactions)
        .outerjoin(merchants, merchants.c.id == transactions.c.merchant_id)
        .where(transactions.c.member_account_id == account_id)
    )


def transaction_view(row: Any) -> dict[str, Any]:
    merchant = (
        None
        if row.merchant_public_id is None
        else {"id": row.merchant_public_id, "name": row.merchant_name}
    )
    return {
        "id": row.public_id,
        "type": row.type,
        "points": row.points,
        "merchant": merchant,
        "created_at": row.created_at,
        "reason": row.reason,
    }


# The member site (SPEC 3.9 `/me`) -------------------------------------------------------------


def signed_in(session: Session, public_id: str) -> FoundMember | None:
    """The active member a site session names, with its points account; None when it is
    unknown or blocked since it signed in."""
    try:
        return find_member(session, public_id)
    except NotFound:
        return None


def by_issuer(session: Session, account_id: int) -> list[dict[str, Any]]:
    """The member's open points by who issued them (SPEC 2, Lots): one line per merchant, by
    name, then the coalition's own by source (`welcome`, `tier`). `merchant` is None for the
    coalition's. The lines add up to the points in open lots, which is the balance unless a
    clawback left a debt. At most MAX_BY_MERCHANT lines."""
    issuers = accounts.alias("issuers")
    rows = session.execute(
        select(
            merchants.c.public_id,
            merchants.c.name,
            lots.c.source,
            func.sum(lots.c.remaining).label("points"),
        )
        .select_from(lots)
        .join(issuers, issuers.c.id == lots.c.issuer_account_id)
        .outerjoin(merchants, merchants.c.id == issuers.c.merchant_id)
        .where(lots.c.account_id == account_id, lots.c.remaining > 0)
        .group_by(merchants.c.id, merchants.c.public_id, merchants.c.name, lots.c.source)
        .order_by(merchants.c.id.is_(None), merchants.c.name, merchants.c.id, lots.c.source)
        .limit(MAX_BY_MERCHANT)
    ).all()
    return [
        {
            "merchant": None if row.public_id is None else {"id": row.public_id, "name": row.name},
            "source": row.source,
            "points": int(row.points),
        }
        for row in rows
    ]


def history(
    session: Session, account_id: int, page: int, page_size: int
) -> tuple[list[dict[str, Any]], bool]:
    """One page (1-based) of the member's transactions at every merchant, newest first, and
    whether an older page follows. Scoped by the member's account, as `transactions_of`."""
    rows = session.execute(
        transactions_of(account_id)
        .order_by(transactions.c.id.desc())
        .limit(page_size + 1)
        .offset((page - 1) * page_size)
    ).all()
    return [transaction_view(row) for row in rows[:page_size]], len(rows) > page_size


def overview(session: Session, member: FoundMember, now: datetime, zone: str) -> dict[str, Any]:
    """What the member site's home shows: the profile, one balance with what expires when and
    what each shop's points make of it, and the programme's terms that concern the member (the
    welcome bonus still to come, the tier's earn multiplier)."""
    terms = economics.terms_on(clock.business_date(now, zone), session=session)
    balance = points(session, member.id, now, zone)
    own = profile(session, member.id, now)
    multiplier = next((t.multiplier for t in terms.tiers if t.name == own["tier"]), None)
    welcomed = session.execute(
        select(accounts.c.welcomed).where(accounts.c.id == member.account_id)
    ).scalar_one()
    return {
        **own,
        **balance,
        "by_issuer": by_issuer(session, member.account_id),
        "tier_multiplier": multiplier,
        "welcome_bonus": 0 if welcomed else terms.welcome_bonus,
    }
