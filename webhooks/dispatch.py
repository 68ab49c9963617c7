"""Fan-out (SPEC 3.6): each event of the outbox becomes one delivery per endpoint that should hear
it, then is marked `dispatched_at` (decision 230). An event is heard by the endpoints of its own
merchant (`merchant_id`; routing is decided where the event is written) that are enabled, not
deleted, existed when the event happened (an endpoint never receives the past) and subscribe to
its type (`events` NULL: every type); never when the type is internal
(`webhooks.catalogue.is_deliverable`). The portal's test event goes to the one endpoint it names.

Each call does one batch in the caller's transaction and the caller commits it: the deliveries
and the marks go together, and a rerun after a crash between batches finds the same events again
and inserts nothing twice (one delivery per endpoint and event, `ON CONFLICT DO NOTHING`). On
PostgreSQL the batch is locked `FOR UPDATE SKIP LOCKED`, so two pumps take different events.

Events nobody can hear (the coalition's own, an internal type, a merchant without an endpoint)
are marked by one set-based statement per chunk without reading them: the tiers' nightly job
may write a hundred thousand coalition-only events at once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, not_, or_, select, update
from sqlalchemy.orm import Session

from coalition.database import insert_unless_present
from coalition.outbox import outbox_events
from webhooks.catalogue import DELIVERABLE, TEST_EVENT
from webhooks.models import webhook_deliveries, webhook_endpoints

# Events read and fanned out per transaction (at most 16 endpoints each).
BATCH = 500
# Events nobody hears, marked per statement.
SILENT_CHUNK = 10_000


def _listening(event: Any) -> Any:
    """An enabled, not deleted endpoint of the event's merchant that existed when it happened."""
    return and_(
        webhook_endpoints.c.merchant_id == event.c.merchant_id,
        webhook_endpoints.c.enabled.is_(True),
        webhook_endpoints.c.deleted_at.is_(None),
        webhook_endpoints.c.created_at <= event.c.created_at,
    )


def mark_unheard(session: Session, now: datetime, *, limit: int = SILENT_CHUNK) -> int:
    """Mark dispatched, without reading them, up to `limit` of the oldest undispatched events
    that no endpoint can hear: the coalition's own (no merchant), internal types, and those of a
    merchant with no endpoint that existed then. Returns how many; the caller commits."""
    event = outbox_events
    unheard = (
        select(event.c.id)
        .where(
            event.c.dispatched_at.is_(None),
            or_(
                event.c.merchant_id.is_(None),
                event.c.type.not_in(DELIVERABLE),
                not_(exists().where(_listening(event))),
            ),
        )
        .order_by(event.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if session.get_bind().dialect.name == "postgresql":
        ids = unheard.scalar_subquery()
        result = session.execute(
            update(event)
            .where(event.c.id.in_(ids), event.c.dispatched_at.is_(None))
            .values(dispatched_at=now)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
    found = session.execute(unheard).scalars().all()
    _mark(session, found, now)
    return len(found)


def fan_out(session: Session, now: datetime, *, limit: int = BATCH) -> int:
    """Make the deliveries of up to `limit` of the oldest undispatched events and mark them
    dispatched. Returns the number of events done (0: none left); the caller commits."""
    event = outbox_events
    events = session.execute(
        select(event.c.id, event.c.type, event.c.merchant_id, event.c.created_at)
        .where(event.c.dispatched_at.is_(None))
        .order_by(event.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not events:
        return 0
    merchants = {e.merchant_id for e in events if e.merchant_id is not None}
    endpoints: dict[int, list[Any]] = {}
    if merchants:
        for endpoint in session.execute(
            select(
                webhook_endpoints.c.id,
                webhook_endpoints.c.public_id,
                webhook_endpoints.c.merchant_id,
                webhook_endpoints.c.events,
                webhook_endpoints.c.created_at,
            )
            .where(
                webhook_endpoints.c.merchant_id.in_(merchants),
                webhook_endpoints.c.enabled.is_(True),
                webhook_endpoints.c.deleted_at.is_(None),
            )
            .order_by(webhook_endpoints.c.id)
        ):
            endpoints.setdefault(endpoint.merchant_id, []).append(endpoint)
    tested = _tested_endpoints(session, [e.id for e in events if e.type == TEST_EVENT])
    rows = [
        {
            "merchant_id": e.merchant_id,
            "endpoint_id": endpoint.id,
            "event_id": e.id,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for e in events
        if e.merchant_id is not None and e.type in DELIVERABLE
        for endpoint in endpoints.get(e.merchant_id, ())
        if _hears(endpoint, e, tested.get(e.id))
    ]
    if rows:
        session.execute(
            insert_unless_present(session, webhook_deliveries, ["endpoint_id", "event_id"]), rows
        )
    _mark(session, [e.id for e in events], now)
    return len(events)


def _hears(endpoint: Any, event: Any, tested: str | None) -> bool:
    if endpoint.created_at > event.created_at:
        return False
    if event.type == TEST_EVENT:
        return endpoint.public_id == tested
    return endpoint.events is None or event.type in endpoint.events


def _tested_endpoints(session: Session, event_ids: list[int]) -> dict[int, str | None]:
    """The endpoint (`public_id`) each test event is for: its `data["endpoint"]["id"]`."""
    if not event_ids:
        return {}
    found: dict[int, str | None] = {}
    for event_id, data in session.execute(
        select(outbox_events.c.id, outbox_events.c.data).where(outbox_events.c.id.in_(event_ids))
    ):
        endpoint = data.get("endpoint") if isinstance(data, dict) else None
        found[event_id] = endpoint.get("id") if isinstance(endpoint, dict) else None
    return found


def _mark(session: Session, event_ids: Sequence[int], now: datetime) -> None:
    if event_ids:
        session.execute(
            update(outbox_events).where(outbox_events.c.id.in_(event_ids)).values(dispatched_at=now)
        )
