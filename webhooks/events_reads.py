"""Reads of a merchant's events (SPEC 3.6, `GET /api/v1/events`): the outbox events it hears
(its `merchant_id`, a type it may receive: `webhooks.catalogue`) of the last 30 days, each as
the envelope its endpoints receive. Every query names the merchant, whatever row-level security
would also allow."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from coalition.errors import NotFound
from coalition.ids import is_public_id
from coalition.outbox import outbox_events
from webhooks import signing
from webhooks.catalogue import DELIVERABLE

# SPEC 3.6: events are listed for 30 days (as Stripe's are).
LISTED_FOR = timedelta(days=30)

_COLUMNS = (
    outbox_events.c.id,
    outbox_events.c.public_id,
    outbox_events.c.type,
    outbox_events.c.created_at,
    outbox_events.c.data,
)


def envelope(row: Any) -> dict[str, Any]:
    """An event as its endpoints receive it (`webhooks.signing.envelope`: one writer of the
    envelope, so the list and the deliveries cannot differ)."""
    return signing.envelope(row._mapping)


def _heard(merchant_id: int, now: datetime) -> Select[Any]:
    """The merchant's own deliverable events of the last 30 days."""
    return select(*_COLUMNS).where(
        outbox_events.c.merchant_id == merchant_id,
        outbox_events.c.type.in_(DELIVERABLE),
        outbox_events.c.created_at >= now - LISTED_FOR,
    )


def events_of(
    merchant_id: int,
    now: datetime,
    *,
    types: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select[Any]:
    """The merchant's events (for `paginate`, newest first): of `types` if any, created at or
    after `since` and before `until`, within the 30 days."""
    query = _heard(merchant_id, now)
    if types:
        query = query.where(outbox_events.c.type.in_(sorted(set(types))))
    if since is not None:
        query = query.where(outbox_events.c.created_at >= since)
    if until is not None:
        query = query.where(outbox_events.c.created_at < until)
    return query


def event_of(session: Session, merchant_id: int, public_id: str, now: datetime) -> dict[str, Any]:
    """One of the merchant's events. Another merchant's, the coalition's, an internal one, one
    older than 30 days and one that never was are all `not_found`, alike."""
    if not is_public_id(public_id, "evt"):
        raise NotFound("no such event")
    row = session.execute(
        _heard(merchant_id, now).where(outbox_events.c.public_id == public_id)
    ).one_or_none()
    if row is None:
        raise NotFound("no such event")
    return envelope(row)


id_column = outbox_events.c.id
