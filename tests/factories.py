"""Factories: the smallest calls that put a merchant, a member or points in the ledger, with
defaults a reader need not think about. Time is fixed, never the wall clock."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from coalition import clock
from coalition.ids import new_id
from coalition.ledger import awards, operations
from coalition.ledger.rows import Actor
from coalition.members.services import create_member
from coalition.oauth import clients, scopes, tokens
from merchants.services import create_merchant
from settlement.models import Statement

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LIFETIME = timedelta(days=730)  # 24 months, the economics' example
TILL = Actor("merchant_client", "till-1")

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
    pending_until: datetime | None = None,
) -> dict[str, Any]:
    """An award for a purchase of `amount_minor` (default: one euro a point); pending until
    `pending_until`, given one."""
    return awards.award(
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
        pending_until=pending_until,
    )


def redeem(
    session: Session, member_id: int, merchant_id: int, points: int, *, now: datetime = T0
) -> dict[str, Any]:
    return operations.redeem(
        session, member_id=member_id, merchant_id=merchant_id, points=points, actor=TILL, now=now
    )


ALL_MERCHANT_SCOPES = " ".join(sorted(scopes.MERCHANT_SCOPES))


def client(
    session: Session,
    merchant_id: int | None,
    scope: str = ALL_MERCHANT_SCOPES,
    *,
    redirect_uris: list[str] | None = None,
) -> dict[str, Any]:
    """An OAuth client of a merchant (or of the operator, `merchant_id` None): `client_id`,
    `client_secret`, `scopes`."""
    return clients.create_client(
        session,
        name="till",
        merchant_id=merchant_id,
        scopes=scopes.parse(scope),
        redirect_uris=redirect_uris,
        now=T0,
    )


def bearer(
    session: Session,
    client_id: str,
    scope: str,
    *,
    member_id: int | None = None,
    now: datetime | None = None,
    expires_in: timedelta = timedelta(hours=1),
) -> dict[str, str]:
    """Headers with a live access token for `client_id` (issued at `now`, default the wall
    clock, since the API checks tokens against it)."""
    token = tokens.issue_token(
        session,
        client_id=client_id,
        scope=scope,
        member_id=member_id,
        now=now or clock.utcnow(),
        expires_in=expires_in,
    )
    return {"Authorization": f"Bearer {token}"}


def merchant_headers(
    session: Session, merchant_id: int, scope: str = ALL_MERCHANT_SCOPES
) -> dict[str, str]:
    """A merchant's till: a client and a token with `scope`."""
    return bearer(session, client(session, merchant_id, scope)["client_id"], scope)


def operator_headers(session: Session) -> dict[str, str]:
    return bearer(session, client(session, None, "operator")["client_id"], "operator")


def member_headers(
    session: Session, merchant_id: int, member_id: int, scope: str = "balance:read redeem"
) -> dict[str, str]:
    """A member-delegated token: the member, through the merchant's app."""
    app = client(session, merchant_id, scope, redirect_uris=["https://app.example/cb"])
    return bearer(session, app["client_id"], scope, member_id=member_id)


def statement(
    session: Session,
    merchant_id: int,
    closing: str = "-1.50",
    month: str = "2026-10",
    currency: str = "EUR",
) -> Statement:
    """A merchant's issued statement (as `issue_month` writes it) with `closing` (positive: the
    merchant pays), in one line."""
    row = Statement(
        public_id=new_id("stm"),
        merchant_id=merchant_id,
        month=month,
        currency=currency,
        status="issued",
        opening="0.00",
        exact_net=closing,
        rounding="0.00",
        net=closing,
        closing=closing,
        lines=[
            {
                "kind": "reimbursements",
                "description": "Points redeemed",
                "points": 150,
                "amount": closing,
            }
        ],
        days=[],
        issued_at=T0,
    )
    session.add(row)
    session.flush()
    return row
