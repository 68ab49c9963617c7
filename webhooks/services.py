"""A merchant's webhook endpoints (SPEC 3.6), in the domain's words: register one (its URL
checked for SSRF, `webhooks.addresses.check_registration`), change, disable, re-enable and
delete it, rotate its secret, send it a test event, and redeliver an event. Each operation works
in the caller's transaction and the caller commits (one transaction per request).

- A secret is returned by `create_endpoint` and `rotate_secret` only: no read shows it again.
- At most `MAX_ENDPOINTS` live endpoints per merchant; the next is `TooManyEndpoints`.
- Disabling by the merchant leaves the endpoint's pending deliveries pending (the engine does not
  attempt them); re-enabling clears why it was off and since when it failed, and they resume.
- Deleting is soft (`deleted_at`): its pending deliveries end `failed` at once (decision 259),
  since nothing can deliver or redeliver them any more.
- Rotation keeps the old secret signing beside the new one for `ROTATION_WINDOW`.
- Redelivery makes the event's delivery to each live, enabled endpoint that would hear it
  `pending` again from attempt 0, due now (or makes it, if the endpoint never had one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from coalition import outbox
from coalition.errors import CoalitionError, InvalidRequest, NotFound
from coalition.ids import is_public_id, new_id
from coalition.outbox import outbox_events
from webhooks import reads
from webhooks.addresses import check_registration
from webhooks.catalogue import DELIVERABLE, INTERNAL, SUBSCRIBABLE
from webhooks.dispatch import TEST_EVENT
from webhooks.models import webhook_deliveries, webhook_endpoints
from webhooks.signing import new_secret

MAX_ENDPOINTS = 16
MAX_DESCRIPTION = 200
ROTATION_WINDOW = timedelta(hours=24)
# The advisory lock space of "one endpoint registration per merchant at a time".
REGISTRATION_LOCK_SPACE = 0x776832


class TooManyEndpoints(CoalitionError):
    status, code, title = 409, "too_many_endpoints", "Too many webhook endpoints"


class EndpointDisabled(CoalitionError):
    status, code, title = 409, "endpoint_disabled", "Webhook endpoint disabled"


@dataclass(frozen=True)
class WithSecret:
    """An endpoint and its secret, the one time the secret is shown."""

    endpoint: reads.EndpointView
    secret: str


@dataclass(frozen=True)
class Queued:
    """A delivery made due by a redelivery or a test event."""

    endpoint: str
    event: str
    next_attempt_at: datetime


def _events(events: Sequence[str] | None) -> list[str] | None:
    """The subscription: None for every type, else known deliverable types, sorted, once each."""
    if events is None:
        return None
    unknown = sorted({e for e in events if e not in SUBSCRIBABLE})
    if unknown:
        raise InvalidRequest(
            f"not an event type an endpoint can receive: {', '.join(unknown)}",
            errors={"events": [f"unknown event type {e}" for e in unknown]},
        )
    if not events:
        raise InvalidRequest(
            "name at least one event type, or leave `events` out (or null) for all of them",
            errors={"events": ["empty"]},
        )
    return sorted(set(events))


def _description(description: str | None) -> str:
    description = (description or "").strip()
    if len(description) > MAX_DESCRIPTION:
        raise InvalidRequest(
            f"the description is longer than {MAX_DESCRIPTION} characters",
            errors={"description": ["too long"]},
        )
    return description


def _lock_registrations(session: Session, merchant_id: int) -> None:
    """Two registrations of one merchant at once wait for each other, so the count holds."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:space, :merchant)"),
            {"space": REGISTRATION_LOCK_SPACE, "merchant": merchant_id},
        )


def create_endpoint(
    session: Session,
    merchant_id: int,
    *,
    url: str,
    events: Sequence[str] | None,
    description: str | None,
    allow_private: bool,
    now: datetime,
) -> WithSecret:
    """Register an endpoint: the URL checked (`UnsafeWebhookUrl`), the events known, at most
    `MAX_ENDPOINTS` live ones. Returns it with its new secret."""
    checked = check_registration(url, allow_private=allow_private)
    wanted, said = _events(events), _description(description)
    _lock_registrations(session, merchant_id)
    ep = webhook_endpoints
    count = session.execute(
        select(func.count())
        .select_from(ep)
        .where(ep.c.merchant_id == merchant_id, ep.c.deleted_at.is_(None))
    ).scalar_one()
    if count >= MAX_ENDPOINTS:
        raise TooManyEndpoints(
            f"a merchant may have at most {MAX_ENDPOINTS} webhook endpoints; delete one first"
        )
    secret = new_secret()
    public_id = new_id(reads.PREFIX)
    session.execute(
        ep.insert().values(
            public_id=public_id,
            merchant_id=merchant_id,
            url=checked,
            description=said,
            events=wanted,
            enabled=True,
            secret=secret,
            created_at=now,
        )
    )
    return WithSecret(reads.endpoint(session, merchant_id, public_id, now), secret)


def update_endpoint(
    session: Session,
    merchant_id: int,
    public_id: str,
    changes: dict[str, Any],
    *,
    allow_private: bool,
    now: datetime,
) -> reads.EndpointView:
    """Change what `changes` names of `url`, `events` (None: all), `description`, `enabled`.
    Turning it off records the merchant as the reason; turning it on clears the reason and
    `failing_since`, and its pending deliveries resume."""
    row = reads.endpoint_row(session, merchant_id, public_id)
    values: dict[str, Any] = {}
    if "url" in changes:
        values["url"] = check_registration(changes["url"], allow_private=allow_private)
    if "events" in changes:
        values["events"] = _events(changes["events"])
    if "description" in changes:
        values["description"] = _description(changes["description"])
    if "enabled" in changes and changes["enabled"] != row.enabled:
        if changes["enabled"]:
            values.update(enabled=True, disabled_reason=None, disabled_at=None, failing_since=None)
        else:
            values.update(enabled=False, disabled_reason="merchant", disabled_at=now)
    if values:
        session.execute(
            update(webhook_endpoints).where(webhook_endpoints.c.id == row.id).values(**values)
        )
    return reads.endpoint(session, merchant_id, public_id, now)


def delete_endpoint(session: Session, merchant_id: int, public_id: str, now: datetime) -> None:
    """Delete (softly): never shown or delivered to again; its pending deliveries end failed."""
    row = reads.endpoint_row(session, merchant_id, public_id)
    session.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == row.id)
        .values(deleted_at=now, enabled=False)
    )
    d = webhook_deliveries
    session.execute(
        update(d)
        .where(d.c.endpoint_id == row.id, d.c.status == "pending")
        .values(status="failed", finished_at=now, next_attempt_at=None)
    )


def rotate_secret(session: Session, merchant_id: int, public_id: str, now: datetime) -> WithSecret:
    """A new secret; the current one keeps signing beside it for `ROTATION_WINDOW` (a rotation
    during another's window ends the older secret at once)."""
    row = reads.endpoint_row(session, merchant_id, public_id)
    secret = new_secret()
    session.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == row.id)
        .values(
            secret=secret,
            previous_secret=row.secret,
            previous_secret_expires_at=now + ROTATION_WINDOW,
        )
    )
    return WithSecret(reads.endpoint(session, merchant_id, public_id, now), secret)


def send_test_event(session: Session, merchant_id: int, public_id: str, now: datetime) -> Queued:
    """A `webhook_endpoint.test` event for this endpoint only: written already dispatched, with
    its one delivery, so the fan-out never sends it elsewhere."""
    row = reads.endpoint_row(session, merchant_id, public_id)
    if not row.enabled:
        raise EndpointDisabled("the endpoint is disabled: enable it to send it a test event")
    event = outbox.event_row(
        TEST_EVENT,
        {"endpoint": {"id": row.public_id, "url": row.url}},
        now,
        merchant_id=merchant_id,
    )
    event["dispatched_at"] = now
    outbox.record(session, [event])
    event_id = session.execute(
        select(outbox_events.c.id).where(outbox_events.c.public_id == event["public_id"])
    ).scalar_one()
    _queue(session, merchant_id, row.id, event_id, now)
    return Queued(row.public_id, str(event["public_id"]), now)


def _queue(
    session: Session, merchant_id: int, endpoint_id: int, event_id: int, now: datetime
) -> None:
    """The event's delivery to the endpoint pending from attempt 0, due now: the one there is
    (whatever its status) or a new one."""
    d = webhook_deliveries
    reset = session.execute(
        update(d)
        .where(d.c.endpoint_id == endpoint_id, d.c.event_id == event_id)
        .values(status="pending", attempts=0, next_attempt_at=now, finished_at=None)
        .returning(d.c.id)
    ).first()
    if reset is None:
        session.execute(
            d.insert().values(
                merchant_id=merchant_id,
                endpoint_id=endpoint_id,
                event_id=event_id,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )


def redeliver(
    session: Session,
    merchant_id: int,
    event_public_id: str,
    endpoint_public_id: str | None,
    now: datetime,
) -> list[Queued]:
    """Deliver the merchant's event again: to the named endpoint, or to each live, enabled
    endpoint whose subscription takes its type (the test event: only the endpoint it names).
    Another merchant's event, or an internal one, is NotFound."""
    if not is_public_id(event_public_id, "evt"):
        raise NotFound("no such event")
    e = outbox_events
    event = session.execute(
        select(e.c.id, e.c.type, e.c.data).where(
            e.c.public_id == event_public_id, e.c.merchant_id == merchant_id
        )
    ).first()
    if event is None or event.type in INTERNAL or event.type not in DELIVERABLE:
        raise NotFound("no such event")
    tested = None
    if event.type == TEST_EVENT and isinstance(event.data, dict):
        tested = (event.data.get("endpoint") or {}).get("id")
    if endpoint_public_id is not None:
        row = reads.endpoint_row(session, merchant_id, endpoint_public_id)
        if not row.enabled:
            raise EndpointDisabled("the endpoint is disabled: enable it to redeliver to it")
        if not _hears(row, event.type, tested):
            raise InvalidRequest(
                f"the endpoint does not subscribe to {event.type}",
                errors={"endpoint": ["not subscribed to this event's type"]},
            )
        targets = [row]
    else:
        targets = [
            row
            for row in session.execute(
                reads.live(merchant_id)
                .where(webhook_endpoints.c.enabled.is_(True))
                .order_by(webhook_endpoints.c.id)
            ).all()
            if _hears(row, event.type, tested)
        ]
    for row in targets:
        _queue(session, merchant_id, row.id, event.id, now)
    return [Queued(row.public_id, event_public_id, now) for row in targets]


def _hears(endpoint: Any, event_type: str, tested: str | None) -> bool:
    if event_type == TEST_EVENT:
        return bool(endpoint.public_id == tested)
    return endpoint.events is None or event_type in endpoint.events
