"""Operations on merchants. Creating one also opens its issuance account in the ledger."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from coalition import clock
from coalition.database import table
from coalition.ids import new_id
from coalition.ledger import accounts
from merchants.models import Merchant


def create_merchant(
    session: Session, name: str, *, status: str = "active", now: datetime | None = None
) -> tuple[int, str]:
    """A merchant and its ledger account. Returns (id, public id)."""
    public_id = new_id("mer")
    merchant_id = session.execute(
        insert(table(Merchant))
        .values(public_id=public_id, name=name, status=status, created_at=now or clock.utcnow())
        .returning(table(Merchant).c.id)
    ).scalar_one()
    accounts.open_merchant_account(session, merchant_id)
    return merchant_id, public_id
