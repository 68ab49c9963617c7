"""Velocity limits (SPEC 3.10, issue 13 point 9).

The operator sets two limits in the economics terms (decision 209), both off by default: the
most points one member may spend in any 24 hours (at every merchant together), and the most
points spent at one merchant in any hour (a merchant may have its own). Spending is a
redemption or a captured hold (a `redeem` transaction), counted gross: a reversal gives the
points back but not the room under the limit. A hold is checked too, as what its capture would
spend, so a till learns at once rather than at the capture.

`check_spend` runs under the member's account lock, so two spendings of one member are
counted one after the other. Two members spending at one merchant hold different locks: while
that merchant's limit is on, PostgreSQL also takes a transaction-scoped advisory lock on the
merchant, after the member's (the global order: member, then merchant; nothing else takes it,
so it closes no cycle). SQLite serialises writers itself.

A spending over a limit is refused (`VelocityLimitExceeded`, 429, with the seconds until it
would fit when waiting can help) and changes nothing, but leaves a `fraud_events` row: the
caller writes it with `record` after the refusal's rollback, in the commit that ends the
request (`merchants.redemptions.SpendChecks.on_refusal`). Only the operator and the system see
the table; the nightly fraud report (a later issue) reads it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from zlib import crc32

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from coalition import tenancy
from coalition.database import table
from coalition.economics import Terms
from coalition.errors import CoalitionError
from coalition.fraud.models import fraud_events
from coalition.ledger.models import Transaction

MEMBER_WINDOW: Final = timedelta(hours=24)
MERCHANT_WINDOW: Final = timedelta(hours=1)
# The advisory lock space of the merchant limit (`jobs.exclusive` uses 0x636F61).
_MERCHANT_LOCK_SPACE: Final = 0x76656C

transactions = table(Transaction)


class VelocityLimitExceeded(CoalitionError):
    status, code, title = 429, "velocity_limit_exceeded", "Spending limit reached"


@dataclass(frozen=True)
class Refused:
    """A spending refused by a limit: what the fraud event records."""

    kind: str
    member_id: int
    merchant_id: int
    details: dict[str, Any]


def check_spend(
    session: Session,
    terms: Terms,
    *,
    member_id: int,
    member_account_id: int,
    merchant_id: int,
    points: int,
    now: datetime,
) -> None:
    """Refuse (`VelocityLimitExceeded`, carrying a `Refused` as `.refused`) a spending of
    `points` by this member at this merchant that would pass a limit of `terms`. The caller
    holds the member's account lock."""
    limit = terms.member_daily_points_limit
    if limit is not None:
        spent = _spent(
            session, transactions.c.member_account_id == member_account_id, now, MEMBER_WINDOW
        )
        if sum(p for _, p in spent) + points > limit:
            _refuse(
                "member_velocity", member_id, merchant_id, points, limit, spent, now, MEMBER_WINDOW
            )
    limit = terms.merchant_hourly_points_limit
    if limit is not None:
        _lock_merchant(session, merchant_id)
        spent = _spent(session, transactions.c.merchant_id == merchant_id, now, MERCHANT_WINDOW)
        if sum(p for _, p in spent) + points > limit:
            _refuse(
                "merchant_velocity",
                member_id,
                merchant_id,
                points,
                limit,
                spent,
                now,
                MERCHANT_WINDOW,
            )


def _lock_merchant(session: Session, merchant_id: int) -> None:
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:space, :key)"),
            {"space": _MERCHANT_LOCK_SPACE, "key": crc32(str(merchant_id).encode()) & 0x7FFFFFFF},
        )


def _spent(
    session: Session, whose: Any, now: datetime, window: timedelta
) -> list[tuple[datetime, int]]:
    """The spendings (redemptions and captures) in the window that ends now, oldest first."""
    # As the system: a member's spending at other merchants counts too, and a merchant's
    # tenant sees only its own transactions. Only the sums leave this function.
    with tenancy.acting_as(tenancy.SYSTEM, session):
        rows = session.execute(
            select(transactions.c.created_at, transactions.c.points)
            .where(whose, transactions.c.type == "redeem", transactions.c.created_at > now - window)
            .order_by(transactions.c.created_at)
        ).all()
    return [(row.created_at, int(row.points)) for row in rows]


def _refuse(
    kind: str,
    member_id: int,
    merchant_id: int,
    points: int,
    limit: int,
    spent: list[tuple[datetime, int]],
    now: datetime,
    window: timedelta,
) -> None:
    total = sum(p for _, p in spent)
    retry_after = _wait(spent, points, limit, now, window)
    who = "this member" if kind == "member_velocity" else "members at this merchant"
    hours = int(window.total_seconds() // 3600)
    detail = (
        f"{who} may spend at most {limit} points in any {hours} hour{'s' if hours > 1 else ''}:"
        f" {total} were spent, {points} more were asked for"
    )
    extra: dict[str, Any] = {"limit": kind.removesuffix("_velocity"), "limit_points": limit}
    if retry_after is not None:
        extra["retry_after"] = retry_after
    error = VelocityLimitExceeded(detail, **extra)
    error.refused = Refused(  # type: ignore[attr-defined]
        kind,
        member_id,
        merchant_id,
        {
            "limit_points": limit,
            "window_hours": hours,
            "spent_points": total,
            "asked_points": points,
        },
    )
    raise error


def _wait(
    spent: list[tuple[datetime, int]], points: int, limit: int, now: datetime, window: timedelta
) -> int | None:
    """Seconds until enough of the window's spending has left it for `points` to fit; None
    when no wait helps (`points` alone pass the limit)."""
    if points > limit:
        return None
    remaining = sum(p for _, p in spent)
    for created_at, p in spent:
        remaining -= p
        if remaining + points <= limit:
            return max(1, math.ceil((created_at + window - now).total_seconds()))
    return 1


def record(session: Session, refused: Refused, now: datetime) -> None:
    """Write the fraud event of a refused spending, as the system (a merchant's transaction may
    not write, nor read, the operator's table)."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        session.execute(
            insert(fraud_events).values(
                kind=refused.kind,
                member_id=refused.member_id,
                merchant_id=refused.merchant_id,
                details=refused.details,
                at=now,
            )
        )


def record_wrong_code(
    session: Session, member_id: int, merchant_id: int | None, *, locked: bool, now: datetime
) -> None:
    """Write the fraud event of a wrong redemption code typed at a merchant's till: one row,
    `code_lockout` when it locked the member's redemption (the nightly report counts both for
    its bursts of wrong codes, decision 321)."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        session.execute(
            insert(fraud_events).values(
                kind="code_lockout" if locked else "wrong_code",
                member_id=member_id,
                merchant_id=merchant_id,
                details={"locked": locked},
                at=now,
            )
        )
