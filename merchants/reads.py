"""The operator's views of merchants, without writing: the list to page through (newest first,
by status), one merchant with its application's details and its dates, and its OAuth clients."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from coalition.database import table
from coalition.errors import NotFound
from coalition.oauth.models import OAuthClient
from merchants.models import Merchant

merchants = table(Merchant)
clients = table(OAuthClient)
MAX_CLIENTS = 200  # a merchant's clients listed at most (TIGER_STYLE: bounded)


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
        "refused_at": row.refused_at,
        "refusal_reason": row.refusal_reason,
    }


def merchant(session: Session, public_id: str) -> dict[str, Any]:
    """One merchant, whatever its status; `not_found` when there is none."""
    row = session.execute(select(merchants).where(merchants.c.public_id == public_id)).one_or_none()
    if row is None:
        raise NotFound("no such merchant")
    return merchant_view(row)


def merchant_page(
    session: Session, status: str | None, page: int, page_size: int
) -> tuple[list[dict[str, Any]], bool]:
    """A page (1-based) of the merchants in `status` (all, given None), newest first, and
    whether there is a next page."""
    query = merchant_list(status).order_by(merchants.c.id.desc())
    rows = session.execute(query.limit(page_size + 1).offset((page - 1) * page_size)).all()
    return [merchant_view(row) for row in rows[:page_size]], len(rows) > page_size


def status_counts(session: Session) -> dict[str, int]:
    """How many merchants are in each status."""
    rows = session.execute(
        select(merchants.c.status, func.count()).group_by(merchants.c.status)
    ).all()
    return {status: count for status, count in rows}


def merchant_clients(session: Session, public_id: str) -> list[dict[str, Any]]:
    """The merchant's OAuth clients, newest first: name, id, scopes, whether they work. The
    caller acts as the operator (row-level security) and the query names the merchant too."""
    merchant_id = session.execute(
        select(merchants.c.id).where(merchants.c.public_id == public_id)
    ).scalar_one_or_none()
    if merchant_id is None:
        raise NotFound("no such merchant")
    rows = session.execute(
        select(
            clients.c.client_id,
            clients.c.name,
            clients.c.scopes,
            clients.c.redirect_uris,
            clients.c.disabled,
            clients.c.revoked_at,
            clients.c.created_at,
        )
        .where(clients.c.merchant_id == merchant_id)
        .order_by(clients.c.id.desc())
        .limit(MAX_CLIENTS)
    ).all()
    return [dict(row._mapping) for row in rows]
