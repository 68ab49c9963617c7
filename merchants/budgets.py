"""Budgets (SPEC 2): the operator may cap the merchant-funded points a merchant issues per
calendar month (in the coalition's time zone). A purchase past the cap is refused with `422
issuance_cap_reached`, never awarded fewer points.

A capped merchant's purchases count their merchant-funded points (base, campaign, stamp; the
operator's tier, premium and welcome points are the operator's cost, not the merchant's) on one
row per merchant and month, `issuance_counters`, locked for the rest of the transaction before
it is read and raised: two concurrent purchases see each other's points, so together they never
pass the cap. The lock is taken after the members' (the global lock order: members, then the
counter). An uncapped merchant never touches the table. Points are counted in the month they
are recorded (as settlement counts issuance); a refund does not give them back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from coalition import audit, clock
from coalition.database import insert_unless_present, table
from coalition.errors import CoalitionError, NotFound
from coalition.ledger.accounts import merchant_account_id
from coalition.ledger.models import Transfer
from merchants.models import IssuanceCounter, Merchant

counters = table(IssuanceCounter)
merchants = table(Merchant)
transfers = table(Transfer)


class IssuanceCapReached(CoalitionError):
    status, code, title = 422, "issuance_cap_reached", "Monthly issuance cap reached"


def month_of(now: datetime) -> date:
    """The first day of `now`'s month in the coalition's time zone."""
    return clock.business_date(now, current_app.config["COALITION_TIMEZONE"]).replace(day=1)


class Budget:
    """A capped merchant's month, locked: what it has issued, and what it may still issue."""

    def __init__(self, session: Session, merchant_id: int, cap: int, now: datetime) -> None:
        self.session, self.merchant_id, self.cap = session, merchant_id, cap
        self.month = month_of(now)
        session.execute(
            insert_unless_present(session, counters, ["merchant_id", "month"]).values(
                merchant_id=merchant_id, month=self.month, issued=0
            )
        )
        self.issued = self.before = session.execute(
            select(counters.c.issued)
            .where(counters.c.merchant_id == merchant_id, counters.c.month == self.month)
            .with_for_update()
        ).scalar_one()

    def refusal(self, points: int) -> IssuanceCapReached | None:
        """None, and `points` counted, if they fit under the cap; else the refusal."""
        if self.issued + points <= self.cap:
            self.issued += points
            return None
        left = max(self.cap - self.issued, 0)
        return IssuanceCapReached(
            f"this purchase would issue {points} merchant-funded points, and only {left} of this"
            f" month's cap of {self.cap} are left; the operator sets the cap",
            cap=self.cap,
            left=left,
        )

    def save(self) -> None:
        """Write what the purchases counted (under the lock taken when the budget was read)."""
        if self.issued != self.before:
            self.session.execute(
                update(counters)
                .where(counters.c.merchant_id == self.merchant_id, counters.c.month == self.month)
                .values(issued=counters.c.issued + (self.issued - self.before))
            )


def set_cap(
    session: Session,
    merchant_public_id: str,
    cap: int | None,
    now: datetime,
    actor: audit.Actor | None = None,
) -> Usage:
    """The operator's cap for the merchant (None: no cap), from now on, in the audit log. The
    current month's counter starts from what the merchant has already issued in it (its award
    transfers), so a cap set on the 20th counts the month from the 1st; a counter the month
    already has (the merchant was capped before) is kept."""
    row = session.execute(
        select(merchants.c.id, merchants.c.monthly_issuance_cap)
        .where(merchants.c.public_id == merchant_public_id)
        .with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFound("no such merchant")
    session.execute(
        update(merchants).where(merchants.c.id == row.id).values(monthly_issuance_cap=cap)
    )
    if cap is not None:
        month = month_of(now)
        zone = current_app.config["COALITION_TIMEZONE"]
        since = clock.end_of_business_date(month - timedelta(days=1), zone)
        issued = session.execute(
            select(func.coalesce(func.sum(transfers.c.amount), 0)).where(
                transfers.c.kind == "award",
                transfers.c.debit_account_id == merchant_account_id(session, row.id),
                transfers.c.created_at >= since,
            )
        ).scalar_one()
        session.execute(
            insert_unless_present(session, counters, ["merchant_id", "month"]).values(
                merchant_id=row.id, month=month, issued=int(issued)
            )
        )
    if actor is not None:
        audit.record(
            session,
            actor,
            "merchant.budget",
            "merchant",
            merchant_public_id,
            before={"monthly_issuance_cap": row.monthly_issuance_cap},
            after={"monthly_issuance_cap": cap},
            now=now,
        )
    return usage(session, row.id, now)


@dataclass(frozen=True)
class Usage:
    """A merchant's cap (None: none), the current month, and the merchant-funded points counted
    in it (0 while it has no cap: an uncapped merchant is not counted)."""

    merchant: str
    monthly_issuance_cap: int | None
    month: date
    issued: int

    @property
    def left(self) -> int | None:
        cap = self.monthly_issuance_cap
        return None if cap is None else max(cap - self.issued, 0)


def usage(session: Session, merchant_id: int, now: datetime) -> Usage:
    """The merchant's budget this month (`Usage`)."""
    month = month_of(now)
    row = session.execute(
        select(
            merchants.c.public_id,
            merchants.c.monthly_issuance_cap,
            select(func.coalesce(func.sum(counters.c.issued), 0))
            .where(counters.c.merchant_id == merchant_id, counters.c.month == month)
            .scalar_subquery()
            .label("issued"),
        ).where(merchants.c.id == merchant_id)
    ).one_or_none()
    if row is None:
        raise NotFound("no such merchant")
    issued = int(row.issued) if row.monthly_issuance_cap is not None else 0
    return Usage(row.public_id, row.monthly_issuance_cap, month, issued)


def usage_of(session: Session, merchant_public_id: str, now: datetime) -> Usage:
    merchant_id = session.execute(
        select(merchants.c.id).where(merchants.c.public_id == merchant_public_id)
    ).scalar_one_or_none()
    if merchant_id is None:
        raise NotFound("no such merchant")
    return usage(session, merchant_id, now)
