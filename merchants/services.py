"""Operations on merchants. Creating one also opens its issuance account in the ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from coalition import clock, tenancy
from coalition.database import table
from coalition.errors import NotFound
from coalition.ids import new_id
from coalition.ledger import accounts
from coalition.oauth.models import OAuthClient
from merchants.models import Merchant

clients = table(OAuthClient)


def create_merchant(
    session: Session,
    name: str,
    *,
    status: str = "active",
    now: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> tuple[int, str]:
    """A merchant and its ledger account. `details` are the application's other columns
    (email, country, category, website, contact_name, password_hash, base_rate). Returns (id,
    public id)."""
    public_id = new_id("mer")
    now = now or clock.utcnow()
    merchant_id = session.execute(
        insert(table(Merchant))
        .values(
            public_id=public_id,
            name=name,
            status=status,
            created_at=now,
            approved_at=now if status == "active" else None,
            **(details or {}),
        )
        .returning(table(Merchant).c.id)
    ).scalar_one()
    accounts.open_merchant_account(session, merchant_id)
    return merchant_id, public_id


def _set_status(
    session: Session, merchant_public_id: str, status: str, now: datetime
) -> dict[str, Any]:
    merchants = table(Merchant)
    row = session.execute(
        select(merchants.c.id, merchants.c.status).where(
            merchants.c.public_id == merchant_public_id
        )
    ).one_or_none()
    if row is None:
        raise NotFound("no such merchant")
    stamp = {"active": {"approved_at": now}, "suspended": {"suspended_at": now}}[status]
    session.execute(
        update(merchants).where(merchants.c.id == row.id).values(status=status, **stamp)
    )
    # A suspended merchant's clients stop working at once: the token check reads this flag.
    with tenancy.acting_as(tenancy.SYSTEM, session):
        session.execute(
            update(clients)
            .where(clients.c.merchant_id == row.id)
            .values(disabled=status == "suspended")
        )
    return {"id": merchant_public_id, "status": status}


def approve_merchant(session: Session, merchant_public_id: str, now: datetime) -> dict[str, Any]:
    """The operator lets a pending (or suspended) merchant in; its clients work again."""
    return _set_status(session, merchant_public_id, "active", now)


def suspend_merchant(session: Session, merchant_public_id: str, now: datetime) -> dict[str, Any]:
    """The operator stops a merchant: every token of its clients is refused from now on."""
    return _set_status(session, merchant_public_id, "suspended", now)
