"""The operator's views of merchants, without writing: the list to page through (newest first,
by status) and one merchant with its application's details and its dates."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from coalition.database import table
from coalition.errors import NotFound
from merchants.models import Merchant

merchants = table(Merchant)


def merchant_list(status: str | None = None) -> Select[Any]:
    """Every merchant, or those in `status`; the caller orders and pages by `merchants.c.id`."""
    query = select(merchants)
    if status:
        query = query.where(merchants.c.status == status)
    return query


def merchant_view(row: Any) -> dict[str, Any]:
    """A merchant as the operator reads it (`MerchantOut`)."""
    return {
        "id": row.public_id,
        "name": row.name,
        "status": row.status,
        "email": row.email,
        "country": row.country,
        "category": row.category,
        "website": row.website,
        "contact_name": row.contact_name,
        "base_rate": str(row.base_rate),
        "created_at": row.created_at,
        "approved_at": row.approved_at,
        "suspended_at": row.suspended_at,
    }


def merchant(session: Session, public_id: str) -> dict[str, Any]:
    """One merchant, whatever its status; `not_found` when there is none."""
    row = session.execute(select(merchants).where(merchants.c.public_id == public_id)).one_or_none()
    if row is None:
        raise NotFound("no such merchant")
    return merchant_view(row)
