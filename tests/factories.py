"""Factories: the smallest calls that put a merchant, a member or points in the ledger, with
defaults a reader need not think about. Time is fixed, never the wall clock."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from coalition.ledger import operations
from coalition.members.services import create_member
from merchants.services import create_merchant

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LIFETIME = timedelta(days=730)  # 24 months, the economics' example
TILL = operations.Actor("merchant_client", "till-1")

_external_ids = itertools.count(1)


def merchant(session: Session, name: str = "Shop") -> int:
    return create_merchant(session, name, now=T0)[0]


def member(session: Session) -> int:
    return create_member(session, now=T0)[0]


def purchase(
    session: Session,
    member_id: int,
    merchant_id: int,
    points: int,
    *,
    welcome: int = 0,
    tier: int = 0,
    amount_minor: int | None = None,
    now: datetime = T0,
    expires_at: datetime | None = None,
) -> dict[str, Any]:
    """An award for a purchase of `amount_minor` (default: one euro a point)."""
    return operations.award(
        session,
        member_id=member_id,
        merchant_id=merchant_id,
        parts={"merchant": points, "tier": tier, "welcome": welcome},
        expires_at=expires_at or now + LIFETIME,
        amount_minor=points * 100 if amount_minor is None else amount_minor,
        currency="EUR",
        external_id=f"receipt-{next(_external_ids)}",
        actor=TILL,
        now=now,
    )


def redeem(
    session: Session, member_id: int, merchant_id: int, points: int, *, now: datetime = T0
) -> dict[str, Any]:
    return operations.redeem(
        session, member_id=member_id, merchant_id=merchant_id, points=points, actor=TILL, now=now
    )
