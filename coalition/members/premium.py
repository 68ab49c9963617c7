"""The paid premium membership (SPEC 2), the core's half: a year of it, bought through Stripe,
multiplies what its member earns (the extra points are the operator's). This module keeps the
`memberships` rows and answers the purchase path's question, `premium_multiplier_at`; the
payment itself (the Checkout Session, and Stripe's events that confirm it) is settlement's
(`settlement.premium`), which calls `begin`, `attach_checkout`, `confirm`, `cancel` and
`refund` here. The nightly job (`daily`) sends the renewal reminder and lapses what ended.

A membership's life:

    begin --> pending --(Stripe confirms the payment: confirm)--> active (a year from then)
    pending --(the checkout expired: cancel)--> cancelled
    active --(its end passed: the nightly lapse)--> lapsed
    active --(the payment refunded in full: refund)--> refunded (it ends then)

`period` counts a member's years. At most one attempt per member and period is not cancelled
(a unique index), so one period is never bought twice; a member may buy the next period once
the current one ends within the reminder window (`Premium.reminder_days`), and that year then
starts where the current one ends."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, Select, func, or_, select, text, update
from sqlalchemy.orm import Session

from coalition import outbox
from coalition.database import insert_unless_present, table
from coalition.economics import Premium
from coalition.errors import CoalitionError, NotFound
from coalition.ids import new_id
from coalition.ledger.models import Transaction
from coalition.members.models import Member, Membership

log = logging.getLogger(__name__)

memberships = table(Membership)
members = table(Member)
transactions = table(Transaction)

# Statuses of a membership that was paid for: each covers its starts_at to ends_at.
PAID = ("active", "lapsed", "refunded")
# A bound on one batch of the nightly job (TIGER_STYLE); it loops until none is left.
BATCH = 1000
LIVE = text("status <> 'cancelled'")


class AlreadyPremium(CoalitionError):
    status, code, title = 409, "already_premium", "Already a premium member for this period"


@dataclass(frozen=True)
class Attempt:
    """A membership being bought: what settlement needs to take the payment for it."""

    id: int
    public_id: str
    period: int
    status: str
    price_minor: int
    currency: str
    multiplier: Decimal
    checkout_session_id: str | None


def one_year_after(moment: datetime) -> datetime:
    """The same moment a year later; 29 February goes to 28 February."""
    try:
        return moment.replace(year=moment.year + 1)
    except ValueError:
        return moment.replace(year=moment.year + 1, day=28)


# -- reads -------------------------------------------------------------------------------------


def _in_force(columns: Sequence[Any], member_id: Any, at: Any) -> Select[Any]:
    """`columns` of the member's paid membership whose year covers `at` (from its start,
    before its end); the latest start first."""
    return (
        select(*columns)
        .where(
            memberships.c.member_id == member_id,
            # Spelt out: a statement compiled once (the purchase's) takes no expanding IN.
            or_(*(memberships.c.status == status for status in PAID)),
            memberships.c.starts_at <= at,
            memberships.c.ends_at > at,
        )
        .order_by(memberships.c.starts_at.desc())
        .limit(1)
    )


def premium_multiplier_at(session: Session, member_id: int, at: datetime) -> Decimal | None:
    """The earn multiplier of the member's premium membership in force at `at` (paid for, and
    `at` within its year: from its start, before its end), or None when it has none then. The
    multiplier is the one the membership was sold with."""
    found = session.execute(_in_force([memberships.c.multiplier], member_id, at)).scalar()
    return None if found is None else Decimal(found)


def multiplier_column(member_id: Any, at: Any) -> Any:
    """`premium_multiplier_at` as a scalar column (`premium_multiplier`, the text of the
    multiplier or NULL) correlated with `member_id`, so that the statement that locks a
    purchase's member reads it in the same round trip."""
    return (
        _in_force([memberships.c.multiplier], member_id, at)
        .scalar_subquery()
        .label("premium_multiplier")
    )


def premium_multipliers_at(
    session: Session, member_ids: Collection[int], at: datetime
) -> dict[int, Decimal]:
    """`premium_multiplier_at` for many members at once (a batch of purchases at one moment):
    the members with a membership in force at `at`, and its multiplier; the others are
    absent. One query."""
    if not member_ids:
        return {}
    rows = session.execute(
        select(memberships.c.member_id, memberships.c.multiplier)
        .where(
            memberships.c.member_id.in_(sorted(set(member_ids))),
            memberships.c.status.in_(PAID),
            memberships.c.starts_at <= at,
            memberships.c.ends_at > at,
        )
        .order_by(memberships.c.starts_at)
    ).all()
    return {row.member_id: Decimal(row.multiplier) for row in rows}  # the latest start wins


Period = tuple[datetime, datetime, Decimal]


def premium_periods(
    session: Session, member_ids: Collection[int], first: datetime, last: datetime
) -> dict[int, list[Period]]:
    """The paid memberships (start, end, multiplier) of these members that cover some moment
    from `first` to `last`, oldest start first: for a batch of purchases made at different
    moments, one query, then `multiplier_in` per purchase."""
    if not member_ids:
        return {}
    rows = session.execute(
        select(
            memberships.c.member_id,
            memberships.c.starts_at,
            memberships.c.ends_at,
            memberships.c.multiplier,
        )
        .where(
            memberships.c.member_id.in_(sorted(set(member_ids))),
            memberships.c.status.in_(PAID),
            memberships.c.starts_at <= last,
            memberships.c.ends_at > first,
        )
        .order_by(memberships.c.starts_at)
    ).all()
    found: dict[int, list[Period]] = {}
    for row in rows:
        found.setdefault(row.member_id, []).append(
            (row.starts_at, row.ends_at, Decimal(row.multiplier))
        )
    return found


def multiplier_in(periods: Collection[Period], at: datetime) -> Decimal | None:
    """What `premium_multiplier_at` says at `at`, from the member's `premium_periods`."""
    covering = [multiplier for start, end, multiplier in periods if start <= at < end]
    return covering[-1] if covering else None  # the latest start wins


def _view(row: Row[Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "id": row.public_id,
        "period": row.period,
        "status": row.status,
        "starts_at": row.starts_at,
        "ends_at": row.ends_at,
        "multiplier": Decimal(row.multiplier),
        "price_minor": row.price_minor,
        "currency": row.currency,
        "paid_at": row.paid_at,
    }


def current(session: Session, member_id: int, at: datetime) -> dict[str, Any] | None:
    """The member's membership in force at `at` (as `premium_multiplier_at` finds it), with
    when it started and ends; None without one."""
    row = session.execute(_in_force([memberships], member_id, at)).first()
    return _view(row)


def in_force(session: Session, member_id: int, at: datetime) -> dict[str, Any] | None:
    """The membership in force at `at` as the member API shows it, or None."""
    found = current(session, member_id, at)
    if found is None:
        return None
    return {
        "id": found["id"],
        "since": found["starts_at"],
        "until": found["ends_at"],
        "multiplier": str(found["multiplier"]),
    }


def status(session: Session, member_id: int, at: datetime) -> dict[str, Any]:
    """What the member's pages show: the membership in force (`current`), the next one already
    bought or being paid for (`next`: a renewal, or a first purchase awaiting its payment),
    and the latest one that ended (`ended`)."""
    rows = session.execute(
        select(memberships)
        .where(memberships.c.member_id == member_id, LIVE)
        .order_by(memberships.c.period.desc())
        .limit(3)
    ).all()
    now_in_force = current(session, member_id, at)
    in_force_id = now_in_force["id"] if now_in_force else None
    upcoming = [
        r
        for r in rows
        if r.public_id != in_force_id
        and (r.status == "pending" or (r.status == "active" and r.starts_at > at))
    ]
    ended = [
        r
        for r in rows
        if r.public_id != in_force_id
        and r.status in PAID
        and r.ends_at is not None
        and r.ends_at <= at
    ]
    return {
        "current": now_in_force,
        "next": _view(upcoming[0]) if upcoming else None,
        "ended": _view(ended[0]) if ended else None,
    }


def next_period(session: Session, member_id: int, at: datetime, terms: Premium) -> int:
    """The period a purchase at `at` would buy, or AlreadyPremium: the member has a paid year
    that ends later than the reminder window, or has already bought (or is paying for) the
    next. A pending attempt is the period being paid for (`begin` returns it)."""
    latest = session.execute(
        select(memberships)
        .where(memberships.c.member_id == member_id, LIVE)
        .order_by(memberships.c.period.desc())
        .limit(1)
    ).first()
    if latest is None:
        return 1
    if latest.status == "pending":
        return int(latest.period)
    if latest.status == "active" and latest.starts_at > at:
        raise AlreadyPremium(
            f"the next year is already bought: it starts on {latest.starts_at.date().isoformat()}"
        )
    if latest.status == "active" and latest.ends_at - at > timedelta(days=terms.reminder_days):
        raise AlreadyPremium(
            f"premium until {latest.ends_at.date().isoformat()}: a renewal may be bought from"
            f" {terms.reminder_days} days before the end"
        )
    return int(latest.period) + 1


def earned_in_year(session: Session, account_id: int, at: datetime) -> int:
    """Points the member earned at partner shops in the 365 days before `at`."""
    return int(
        session.execute(
            select(func.coalesce(func.sum(transactions.c.points), 0)).where(
                transactions.c.member_account_id == account_id,
                transactions.c.type == "earn",
                transactions.c.created_at > at - timedelta(days=365),
                transactions.c.created_at <= at,
            )
        ).scalar_one()
    )


def extra_points(earned: int, multiplier: Decimal) -> int:
    """What `multiplier` would have added to `earned` points, floored."""
    return int(Decimal(earned) * (multiplier - 1) // 1)


# -- the one writer ----------------------------------------------------------------------------


def _attempt(row: Row[Any]) -> Attempt:
    return Attempt(
        id=row.id,
        public_id=row.public_id,
        period=row.period,
        status=row.status,
        price_minor=row.price_minor,
        currency=row.currency,
        multiplier=Decimal(row.multiplier),
        checkout_session_id=row.checkout_session_id,
    )


def begin(
    session: Session, member_id: int, now: datetime, terms: Premium, currency: str
) -> Attempt:
    """The attempt to buy the member's next period at today's terms: a new pending
    membership, or the pending one of that period already being paid for (two clicks, or
    two tabs, make one). AlreadyPremium when the member may not buy now (`next_period`).
    The caller commits."""
    period = next_period(session, member_id, now, terms)
    session.execute(
        insert_unless_present(session, memberships, ["member_id", "period"], LIVE).values(
            public_id=new_id("pmb"),
            member_id=member_id,
            period=period,
            status="pending",
            price_minor=terms.price_minor,
            currency=currency,
            multiplier=str(terms.multiplier),
            created_at=now,
        )
    )
    row = session.execute(
        select(memberships).where(
            memberships.c.member_id == member_id, memberships.c.period == period, LIVE
        )
    ).one()
    if row.status != "pending":
        raise AlreadyPremium("this period is already paid for")
    return _attempt(row)


def attempt(session: Session, public_id: str) -> Attempt:
    row = session.execute(select(memberships).where(memberships.c.public_id == public_id)).first()
    if row is None:
        raise NotFound("no such membership")
    return _attempt(row)


def attach_checkout(session: Session, membership_id: int, checkout_session_id: str) -> None:
    """Remember the Stripe Checkout Session made for a pending attempt (the first one)."""
    session.execute(
        update(memberships)
        .where(
            memberships.c.id == membership_id,
            memberships.c.checkout_session_id.is_(None),
        )
        .values(checkout_session_id=checkout_session_id)
    )


def _lock(session: Session, public_id: str) -> Row[Any] | None:
    return session.execute(
        select(memberships).where(memberships.c.public_id == public_id).with_for_update()
    ).first()


def _event(session: Session, type_: str, row: Row[Any], now: datetime, **values: Any) -> None:
    data = {
        "membership": {
            "id": row.public_id,
            "period": row.period,
            "multiplier": str(row.multiplier),
            **{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()},
        },
        "member": _member_public_id(session, row.member_id),
    }
    outbox.emit(session, type_, data, now, member_id=row.member_id)


def _member_public_id(session: Session, member_id: int) -> str:
    return str(
        session.execute(select(members.c.public_id).where(members.c.id == member_id)).scalar_one()
    )


def confirm(
    session: Session,
    public_id: str,
    *,
    amount_minor: int,
    currency: str,
    checkout_session_id: str | None,
    payment_intent_id: str | None,
    now: datetime,
) -> str:
    """Stripe says the membership `public_id` is paid: it becomes active for a year from now
    (a renewal: from the end of the year before, if that is later), and `membership.started`
    goes to the outbox. A membership already paid for changes nothing (a replay, or a second
    event of the same payment); a payment of another amount or currency activates nothing (a
    person must look). Returns its status after. The caller commits."""
    row = _lock(session, public_id)
    if row is None:
        log.error("stripe confirms membership %s, which is not ours", public_id)
        return "unknown"
    if row.status in PAID:
        return str(row.status)
    if amount_minor != row.price_minor or currency.upper() != row.currency:
        log.error(
            "membership %s: paid %s %s, not %s %s; not activated",
            public_id,
            amount_minor,
            currency,
            row.price_minor,
            row.currency,
        )
        return str(row.status)
    if row.status == "cancelled":
        # Paid after its checkout was given up: it counts, unless another attempt took the
        # period meanwhile; then the money must go back by hand.
        taken = session.execute(
            select(memberships.c.id).where(
                memberships.c.member_id == row.member_id,
                memberships.c.period == row.period,
                LIVE,
            )
        ).first()
        if taken is not None:
            log.error(
                "membership %s paid after its period was bought again: refund it by hand",
                public_id,
            )
            return "cancelled"
    previous_end = session.execute(
        select(memberships.c.ends_at).where(
            memberships.c.member_id == row.member_id,
            memberships.c.period == row.period - 1,
            memberships.c.status == "active",
        )
    ).scalar()
    starts_at = max(now, previous_end) if previous_end is not None else now
    ends_at = one_year_after(starts_at)
    session.execute(
        update(memberships)
        .where(memberships.c.id == row.id)
        .values(
            status="active",
            paid_at=now,
            starts_at=starts_at,
            ends_at=ends_at,
            checkout_session_id=row.checkout_session_id or checkout_session_id,
            payment_intent_id=payment_intent_id,
            cancelled_at=None,
        )
    )
    _event(session, "membership.started", row, now, starts_at=starts_at, ends_at=ends_at)
    return "active"


def cancel(session: Session, public_id: str, now: datetime) -> str:
    """The payment of a pending membership will not come (its checkout expired): cancelled,
    so the member may try again. Anything else is left as it is. The caller commits."""
    row = _lock(session, public_id)
    if row is None:
        return "unknown"
    if row.status != "pending":
        return str(row.status)
    session.execute(
        update(memberships)
        .where(memberships.c.id == row.id)
        .values(status="cancelled", cancelled_at=now)
    )
    return "cancelled"


def refund(session: Session, payment_intent_id: str, now: datetime) -> str | None:
    """The payment of a membership was refunded in full: it ends now (its multiplier stops;
    points already earned stay). Returns its status after, None for no membership of ours."""
    row = session.execute(
        select(memberships)
        .where(memberships.c.payment_intent_id == payment_intent_id)
        .with_for_update()
    ).first()
    if row is None:
        return None
    if row.status not in ("active", "lapsed"):
        return str(row.status)
    ends_at = min(row.ends_at, max(now, row.starts_at))
    session.execute(
        update(memberships)
        .where(memberships.c.id == row.id)
        .values(status="refunded", refunded_at=now, ends_at=ends_at)
    )
    _event(session, "membership.refunded", row, now, ends_at=ends_at)
    return "refunded"


# -- the nightly job ---------------------------------------------------------------------------


def remind_renewals(session: Session, now: datetime, reminder_days: int, limit: int) -> int:
    """`membership.renewal_due` once per membership whose year ends within `reminder_days` of
    `now` (and has not ended), unless its next year is already bought or being paid for;
    each is marked reminded either way. Returns how many were looked at (0: none left)."""
    due = session.execute(
        select(memberships)
        .where(
            memberships.c.status == "active",
            memberships.c.reminded_at.is_(None),
            memberships.c.ends_at > now,
            memberships.c.ends_at <= now + timedelta(days=reminder_days),
        )
        .order_by(memberships.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for row in due:
        renewed = session.execute(
            select(memberships.c.id).where(
                memberships.c.member_id == row.member_id,
                memberships.c.period == row.period + 1,
                LIVE,
            )
        ).first()
        if renewed is None:
            _event(session, "membership.renewal_due", row, now, ends_at=row.ends_at)
        session.execute(
            update(memberships).where(memberships.c.id == row.id).values(reminded_at=now)
        )
    return len(due)


def lapse_ended(session: Session, now: datetime, limit: int) -> int:
    """Every active membership whose year ended by `now` lapses (`membership.lapsed`).
    Returns how many (0: none left)."""
    due = session.execute(
        select(memberships)
        .where(memberships.c.status == "active", memberships.c.ends_at <= now)
        .order_by(memberships.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for row in due:
        session.execute(
            update(memberships)
            .where(memberships.c.id == row.id, memberships.c.status == "active")
            .values(status="lapsed", lapsed_at=now)
        )
        _event(session, "membership.lapsed", row, now, ends_at=row.ends_at)
    return len(due)


def revenue(session: Session, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Memberships paid from `start` to before `end`, by currency: how many and for how much
    (minor units), and those refunded in the same span."""
    paid = session.execute(
        select(
            memberships.c.currency,
            func.count(memberships.c.id),
            func.coalesce(func.sum(memberships.c.price_minor), 0),
        )
        .where(memberships.c.paid_at >= start, memberships.c.paid_at < end)
        .group_by(memberships.c.currency)
    ).all()
    refunded = session.execute(
        select(
            memberships.c.currency,
            func.count(memberships.c.id),
            func.coalesce(func.sum(memberships.c.price_minor), 0),
        )
        .where(memberships.c.refunded_at >= start, memberships.c.refunded_at < end)
        .group_by(memberships.c.currency)
    ).all()
    by_currency: dict[str, dict[str, Any]] = {}
    for currency, count, amount in paid:
        by_currency.setdefault(currency, _zero(currency)).update(
            count=int(count), amount_minor=int(amount)
        )
    for currency, count, amount in refunded:
        by_currency.setdefault(currency, _zero(currency)).update(
            refunded_count=int(count), refunded_minor=int(amount)
        )
    return [by_currency[c] for c in sorted(by_currency)]


def _zero(currency: str) -> dict[str, Any]:
    return {
        "currency": currency,
        "count": 0,
        "amount_minor": 0,
        "refunded_count": 0,
        "refunded_minor": 0,
    }


def paid_year(
    session: Session,
    member_id: int,
    now: datetime,
    terms: Premium,
    currency: str,
    payment_reference: str,
) -> str:
    """A year bought and paid at `now` without Stripe (the demo data, and tests): `begin` then
    `confirm` as the webhook would. Returns the membership's public id. The caller commits."""
    attempt = begin(session, member_id, now, terms, currency)
    confirm(
        session,
        attempt.public_id,
        amount_minor=attempt.price_minor,
        currency=attempt.currency,
        checkout_session_id=None,
        payment_intent_id=payment_reference,
        now=now,
    )
    return attempt.public_id


def run_daily(session: Session, cutoff: datetime, reminder_days: int) -> dict[str, int]:
    """The nightly work up to `cutoff`, in batches of one transaction each (this commits):
    lapse what ended, then remind what ends soon. Safe to run twice: each row changes once."""
    lapsed = reminded = 0
    while done := lapse_ended(session, cutoff, BATCH):
        session.commit()
        lapsed += done
    while done := remind_renewals(session, cutoff, reminder_days, BATCH):
        session.commit()
        reminded += done
    session.commit()
    return {"lapsed": lapsed, "reminded": reminded}
