"""What a merchant sees of its webhooks (SPEC 3.6): its endpoints (never their secrets), an
endpoint's delivery log (each attempt: time, event, status, duration, error; never a body) and
the last outcome of each endpoint, for the portal. Every read names the merchant as well as the
tenant's row-level security does: another merchant's endpoint, or a deleted one, is not found."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from coalition.errors import NotFound
from coalition.ids import is_public_id
from coalition.outbox import outbox_events
from webhooks.models import webhook_attempts, webhook_deliveries, webhook_endpoints

PREFIX = "whe"
# What the API's lists paginate on.
ENDPOINT_ID = webhook_endpoints.c.id
ATTEMPT_ID = webhook_attempts.c.id


@dataclass(frozen=True)
class EndpointView:
    id: str
    url: str
    events: list[str] | None
    description: str
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    created_at: datetime
    # While the previous secret still signs beside the new one: until when.
    secret_rotates_until: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": self.events,
            "description": self.description,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "disabled_at": self.disabled_at,
            "created_at": self.created_at,
            "secret_rotates_until": self.secret_rotates_until,
        }


def view(row: Any, now: datetime) -> EndpointView:
    rotates = row.previous_secret_expires_at
    return EndpointView(
        id=row.public_id,
        url=row.url,
        events=list(row.events) if row.events is not None else None,
        description=row.description or "",
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        disabled_at=row.disabled_at,
        created_at=row.created_at,
        secret_rotates_until=rotates if rotates is not None and rotates > now else None,
    )


def live(merchant_id: int) -> Select[Any]:
    """The merchant's endpoints that are not deleted (for `paginate`: newest first by id)."""
    ep = webhook_endpoints
    return select(ep).where(ep.c.merchant_id == merchant_id, ep.c.deleted_at.is_(None))


def endpoint_row(session: Session, merchant_id: int, public_id: str) -> Any:
    """The merchant's live endpoint by its `whe_` id, or NotFound."""
    if not is_public_id(public_id, PREFIX):
        raise NotFound("no such webhook endpoint")
    row = session.execute(
        live(merchant_id).where(webhook_endpoints.c.public_id == public_id)
    ).first()
    if row is None:
        raise NotFound("no such webhook endpoint")
    return row


def endpoint(session: Session, merchant_id: int, public_id: str, now: datetime) -> EndpointView:
    return view(endpoint_row(session, merchant_id, public_id), now)


def endpoints(session: Session, merchant_id: int, now: datetime) -> list[EndpointView]:
    """All the merchant's live endpoints (at most 16), oldest first."""
    rows = session.execute(live(merchant_id).order_by(webhook_endpoints.c.id)).all()
    return [view(row, now) for row in rows]


def attempts_query(merchant_id: int, endpoint_id: int) -> Select[Any]:
    """An endpoint's delivery log (for `paginate` on `webhook_attempts.c.id`, newest first):
    each attempt's time, event id and type, status code, duration and error."""
    a, d, e = webhook_attempts, webhook_deliveries, outbox_events
    return (
        select(
            a.c.id,
            a.c.attempted_at,
            a.c.status_code,
            a.c.duration_ms,
            a.c.error,
            e.c.public_id.label("event_id"),
            e.c.type.label("event_type"),
            d.c.status.label("delivery_status"),
        )
        .join(d, d.c.id == a.c.delivery_id)
        .join(e, e.c.id == d.c.event_id)
        .where(a.c.merchant_id == merchant_id, a.c.endpoint_id == endpoint_id)
    )


def attempt_view(row: Any) -> dict[str, Any]:
    return {
        "attempted_at": row.attempted_at,
        "event": {"id": row.event_id, "type": row.event_type},
        "status_code": row.status_code,
        "duration_ms": row.duration_ms,
        "error": row.error,
        "succeeded": row.status_code is not None and 200 <= row.status_code < 300,
        "delivery_status": row.delivery_status,
    }


def recent_attempts(
    session: Session, merchant_id: int, endpoint_id: int, limit: int = 50
) -> list[dict[str, Any]]:
    rows = session.execute(
        attempts_query(merchant_id, endpoint_id).order_by(webhook_attempts.c.id.desc()).limit(limit)
    ).all()
    return [attempt_view(row) for row in rows]


def last_attempts(session: Session, merchant_id: int) -> dict[str, dict[str, Any]]:
    """Each live endpoint's latest attempt (by `whe_` id), for the portal's list."""
    found: dict[str, dict[str, Any]] = {}
    for endpoint_row_ in session.execute(live(merchant_id)).all():
        latest = recent_attempts(session, merchant_id, endpoint_row_.id, limit=1)
        if latest:
            found[endpoint_row_.public_id] = latest[0]
    return found


def disabled_by_the_engine(session: Session, merchant_id: int, now: datetime) -> list[EndpointView]:
    """Live endpoints the engine turned off (410 Gone, or five days failing): what the portal's
    notice names."""
    ep = webhook_endpoints
    rows = session.execute(
        live(merchant_id)
        .where(ep.c.enabled.is_(False), ep.c.disabled_reason.in_(("gone", "failing")))
        .order_by(ep.c.id)
    ).all()
    return [view(row, now) for row in rows]
