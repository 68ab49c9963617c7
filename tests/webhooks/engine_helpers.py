"""Helpers for the delivery engine's tests: endpoints and events written directly (the smallest
rows the engine needs), a receiver that verifies what it got, and a clock a test moves."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from coalition import outbox
from coalition.ids import new_id
from coalition.outbox import outbox_events
from tests.webhooks.receiver import Received, Receiver
from webhooks.models import webhook_attempts, webhook_deliveries, webhook_endpoints
from webhooks.signing import new_secret

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class SigningReceiver(Receiver):
    """A receiver told which secrets sign the requests to each path (`expect`); `verify_all`
    checks every request it got with `standardwebhooks.Webhook(secret).verify`, for each of
    them (during a rotation, the old and the new secret must each verify)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.secrets: dict[str, tuple[str, ...]] = {}
        self.lock = threading.Lock()

    def expect(self, path: str, *secrets: str) -> None:
        with self.lock:
            self.secrets[path] = secrets

    def verify(self, request: Received, *secrets: str) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        for secret in secrets or self.secrets[request.path]:
            payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["id"] == request.headers["webhook-id"]
        return payload

    def verify_all(self) -> None:
        for request in list(self.requests):
            assert request.path in self.secrets, f"unexpected request to {request.path}"
            self.verify(request)

    def events(self, path: str | None = None) -> list[str]:
        """The `evt_` ids received (at `path`), in arrival order."""
        return [r.headers["webhook-id"] for r in self.requests if path is None or r.path == path]


@dataclass(frozen=True)
class Endpoint:
    id: int
    public_id: str
    merchant_id: int
    url: str
    secret: str
    path: str


def endpoint(
    session: Session,
    merchant_id: int,
    receiver: SigningReceiver,
    path: str = "/hook",
    *,
    events: list[str] | None = None,
    created_at: datetime = T0,
) -> Endpoint:
    """An enabled endpoint of the merchant at `receiver`'s `path`, which expects its secret."""
    secret = new_secret()
    public_id = new_id("whe")
    url = receiver.url(path)
    endpoint_id = session.execute(
        webhook_endpoints.insert()
        .values(
            public_id=public_id,
            merchant_id=merchant_id,
            url=url,
            description="",
            events=events,
            enabled=True,
            secret=secret,
            created_at=created_at,
        )
        .returning(webhook_endpoints.c.id)
    ).scalar_one()
    receiver.expect(path, secret)
    return Endpoint(endpoint_id, public_id, merchant_id, url, secret, path)


def event(
    session: Session,
    type: str,
    merchant_id: int | None,
    now: datetime = T0,
    data: dict[str, Any] | None = None,
) -> str:
    """An outbox event as the core writes it; its `evt_` id."""
    row = outbox.event_row(type, data or {"note": type}, now, merchant_id=merchant_id)
    outbox.record(session, [row])
    return str(row["public_id"])


def deliveries(session: Session, endpoint_id: int) -> list[dict[str, Any]]:
    d, e = webhook_deliveries, outbox_events
    return [
        dict(row)
        for row in session.execute(
            select(d, e.c.public_id.label("event"))
            .join(e, e.c.id == d.c.event_id)
            .where(d.c.endpoint_id == endpoint_id)
            .order_by(d.c.id)
        ).mappings()
    ]


def attempts(session: Session, endpoint_id: int) -> list[dict[str, Any]]:
    a = webhook_attempts
    return [
        dict(row)
        for row in session.execute(
            select(a).where(a.c.endpoint_id == endpoint_id).order_by(a.c.id)
        ).mappings()
    ]


def endpoint_row(session: Session, endpoint_id: int) -> dict[str, Any]:
    return dict(
        session.execute(select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))
        .mappings()
        .one()
    )


class Clock:
    """The time `coalition.clock.utcnow` gives while installed (monkeypatch it in)."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now

    def to(self, moment: datetime) -> datetime:
        self.now = moment
        return self.now
