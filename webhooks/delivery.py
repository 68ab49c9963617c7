"""Delivery (SPEC 3.6): the due deliveries of one endpoint sent, each attempt written to the log,
and the delivery and its endpoint moved on by the answer.

- A job works one endpoint (decision 244): it leases a few due deliveries at a time (moving their
  `next_attempt_at` forward by `lease`, `FOR UPDATE SKIP LOCKED`), sends them one by one, and
  stops after `BUDGET_SECONDS` of work or at the first attempt that got no answer (a timeout, a
  refused connection): a dead endpoint holds a worker for at most one timeout. What it leased and
  did not send is given back as it was. A worker killed mid-batch only delays its leased
  deliveries until the lease ends; then the pump hands them out again.
- Each attempt signs with the endpoint's secrets as a running job last read them (read again
  every second: a rotation, or turning the endpoint off, reaches a job within a second), the
  signature's timestamp being the real time of the send.
- 2xx: `succeeded`, and the endpoint's `failing_since` cleared. Anything else (3xx included: no
  redirect is followed; no answer at all): the next attempt by `SCHEDULE` with jitter, later if
  the answer's `Retry-After` asks (never sooner, at most a day); `failed` after the tenth.
- 410 Gone disables the endpoint (`gone`); an endpoint whose attempts have all failed for five
  days (`failing_since`) is disabled (`failing`). Either way its merchant hears it: an outbox
  event `webhook_endpoint.disabled`, which reaches the merchant's other endpoints and its event
  list. The deliveries of a disabled or deleted endpoint stay `pending` and are not attempted
  (decision 246): re-enabled, it resumes where it stopped.

Scheduling time comes from `coalition.clock.utcnow` and jitter from an injectable random source,
so tests run the three days of retries without sleeping."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, case, exists, func, select, update
from sqlalchemy.orm import Session

from coalition import clock, outbox
from coalition.outbox import outbox_events
from webhooks import signing
from webhooks.models import webhook_attempts, webhook_deliveries, webhook_endpoints

log = logging.getLogger(__name__)

# Standard Webhooks' suggested schedule: the wait after the 1st, 2nd … 9th failed attempt. The
# 10th failure is the last: about 3.1 days after the first attempt.
SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.10
# A receiver's Retry-After lengthens a wait up to this, never more.
MAX_RETRY_AFTER = timedelta(hours=24)
# All attempts failing this long disables an endpoint.
FAILING_LIMIT = timedelta(days=5)
# A job stops taking deliveries after this much work (one more attempt may run its timeout).
BUDGET_SECONDS = 5.0
# Deliveries leased per transaction.
CHUNK = 20
ERROR_LENGTH = 200

RandomSource = Callable[[], float]


class Answered(Protocol):
    """What the transport says of one POST (`webhooks.transport.Answer`)."""

    @property
    def status(self) -> int | None: ...
    @property
    def retry_after(self) -> str | None: ...
    @property
    def duration_ms(self) -> int: ...
    @property
    def error(self) -> str | None: ...


class Sender(Protocol):
    """The transport (`webhooks.transport.Transport`): one POST, never raising for the
    receiver's or the network's faults."""

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float
    ) -> Answered: ...


def due_endpoints(session: Session, now: datetime) -> list[int]:
    """The enabled endpoints with a delivery due at `now` (one index probe each)."""
    ep, d = webhook_endpoints, webhook_deliveries
    due = exists().where(
        d.c.endpoint_id == ep.c.id, d.c.status == "pending", d.c.next_attempt_at <= now
    )
    return list(
        session.execute(
            select(ep.c.id)
            .where(ep.c.enabled.is_(True), ep.c.deleted_at.is_(None), due)
            .order_by(ep.c.id)
        ).scalars()
    )


def lease_for(timeout: float) -> timedelta:
    """How far a taken delivery's `next_attempt_at` moves: longer than a job can take with it
    (its budget and one attempt's timeout), so only a dead job's deliveries come due again."""
    return timedelta(seconds=2 * timeout + 30)


def next_wait(
    attempts: int, retry_after: str | None, *, sent_at: datetime, rng: RandomSource
) -> timedelta | None:
    """The wait after the `attempts`-th failed attempt, or None when that was the last. The
    schedule's wait, ±10 % by `rng` (a float in [0, 1)), lengthened to `Retry-After` (seconds
    or an HTTP date, read against `sent_at`, the real time of the send) capped at a day."""
    if attempts >= MAX_ATTEMPTS:
        return None
    wait = SCHEDULE[attempts - 1] * (1 + JITTER * (2 * rng() - 1))
    asked = _retry_after(retry_after, sent_at)
    if asked is not None:
        wait = max(wait, min(asked, MAX_RETRY_AFTER))
    return wait


def _retry_after(value: str | None, sent_at: datetime) -> timedelta | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(moment - sent_at, timedelta(0))


@dataclass(frozen=True)
class Worked:
    """What one job did for its endpoint."""

    attempted: int = 0
    succeeded: int = 0
    # Why it stopped before running out of due deliveries: "no_answer", "budget", "disabled".
    stopped: str | None = None


@dataclass
class _Leased:
    id: int
    original_due: datetime
    event: dict[str, Any]


def work_endpoint(
    session: Session,
    endpoint_id: int,
    sender: Sender,
    *,
    timeout: float,
    rng: RandomSource = random.random,
    budget_seconds: float = BUDGET_SECONDS,
    chunk: int = CHUNK,
) -> Worked:
    """Send the endpoint's due deliveries, oldest due first, until none is due, the budget is
    spent, an attempt gets no answer or the endpoint is disabled. Each lease is committed before
    anything is sent; a lease's successes are written together when it is done (decision 269),
    a failure at once with whatever succeeded before it."""
    started = time.monotonic()
    attempted = succeeded = 0
    endpoint = _EndpointView(endpoint_id)
    while True:
        leased = _lease(session, endpoint_id, clock.utcnow(), timeout=timeout, limit=chunk)
        session.commit()
        if not leased:
            return Worked(attempted, succeeded)
        sent: list[_Sent] = []
        stop: str | None = None
        unsent: list[_Leased] = []
        for index, delivery in enumerate(leased):
            row = None
            if time.monotonic() - started >= budget_seconds:
                stop = "budget"
            elif (row := endpoint.read(session)) is None:
                stop = "disabled"
            if stop is not None or row is None:
                unsent = leased[index:]
                break
            attempt = _send(row, delivery, sender, timeout=timeout)
            attempted += 1
            if attempt.ok:
                succeeded += 1
                sent.append(attempt)
                continue
            _record_successes(session, row, sent)
            sent = []
            _record_failure(session, row, attempt, rng)
            session.commit()
            endpoint.forget()  # a 410 or five failing days may just have disabled it
            if attempt.answer.status is None:
                stop = "no_answer"
                unsent = leased[index + 1 :]
                break
        if sent:
            _record_successes(session, endpoint.row, sent)
        _give_back(session, unsent)
        session.commit()
        if stop is not None:
            return Worked(attempted, succeeded, stop)


class _EndpointView:
    """The endpoint as a job last read it: read again when a second old (or forgotten), so a
    merchant's turning it off, deleting it or rotating its secret reaches a running job within
    a second, without a query per attempt."""

    FRESH_SECONDS = 1.0

    def __init__(self, endpoint_id: int) -> None:
        self.endpoint_id = endpoint_id
        self.row: dict[str, Any] = {}
        self.read_at: float | None = None

    def forget(self) -> None:
        self.read_at = None

    def read(self, session: Session) -> dict[str, Any] | None:
        """The endpoint, or None when it is no longer enabled (or deleted)."""
        if self.read_at is None or time.monotonic() - self.read_at >= self.FRESH_SECONDS:
            self.row = dict(
                session.execute(
                    select(webhook_endpoints).where(webhook_endpoints.c.id == self.endpoint_id)
                )
                .mappings()
                .one()
            )
            # Read, not kept: no transaction stays open while the network is waited on.
            session.commit()
            self.read_at = time.monotonic()
        if not self.row["enabled"] or self.row["deleted_at"] is not None:
            return None
        return self.row


def _lease(
    session: Session, endpoint_id: int, now: datetime, *, timeout: float, limit: int
) -> list[_Leased]:
    """Take up to `limit` due deliveries of an enabled endpoint: their due time moves to the
    lease's end, so no other job takes them meanwhile."""
    endpoint = session.execute(
        select(webhook_endpoints.c.id).where(
            webhook_endpoints.c.id == endpoint_id,
            webhook_endpoints.c.enabled.is_(True),
            webhook_endpoints.c.deleted_at.is_(None),
        )
    ).first()
    if endpoint is None:
        return []
    d, e = webhook_deliveries, outbox_events
    rows = session.execute(
        select(d.c.id, d.c.next_attempt_at, e.c.public_id, e.c.type, e.c.created_at, e.c.data)
        .join(e, e.c.id == d.c.event_id)
        .where(
            d.c.endpoint_id == endpoint_id,
            d.c.status == "pending",
            d.c.next_attempt_at <= now,
        )
        .order_by(d.c.next_attempt_at, d.c.id)
        .limit(limit)
        .with_for_update(of=d, skip_locked=True)
    ).all()
    if not rows:
        return []
    until = now + lease_for(timeout)
    session.execute(
        update(d).where(d.c.id.in_([row.id for row in rows])).values(next_attempt_at=until)
    )
    return [
        _Leased(
            row.id,
            row.next_attempt_at,
            {
                "public_id": row.public_id,
                "type": row.type,
                "created_at": row.created_at,
                "data": row.data,
            },
        )
        for row in rows
    ]


def _give_back(session: Session, leased: list[_Leased]) -> None:
    """Deliveries leased and not sent are due again as they were, for the next job."""
    if not leased:
        return
    d = webhook_deliveries
    session.execute(
        update(d)
        .where(d.c.id == bindparam("delivery_id"), d.c.status == "pending")
        .values(next_attempt_at=bindparam("due")),
        [{"delivery_id": row.id, "due": row.original_due} for row in leased],
    )


@dataclass(frozen=True)
class _Sent:
    """One attempt at one delivery: what was sent when, and what came back."""

    delivery: _Leased
    answer: Answered
    attempted_at: datetime
    sent_at: datetime

    @property
    def ok(self) -> bool:
        return self.answer.status is not None and 200 <= self.answer.status < 300

    def log_row(self, endpoint: Mapping[str, Any]) -> dict[str, Any]:
        error = self.answer.error
        return {
            "merchant_id": endpoint["merchant_id"],
            "endpoint_id": endpoint["id"],
            "delivery_id": self.delivery.id,
            "attempted_at": self.attempted_at,
            "status_code": self.answer.status,
            "duration_ms": self.answer.duration_ms,
            "error": error[:ERROR_LENGTH] if error else None,
        }


def _send(
    endpoint: Mapping[str, Any], delivery: _Leased, sender: Sender, *, timeout: float
) -> _Sent:
    """One attempt, signed with the endpoint's secrets of the moment; nothing written."""
    attempted_at = clock.utcnow()
    sent_at = datetime.now(UTC)  # the signature's timestamp is the real time, whatever the clock
    secret, previous = signing.signing_secrets(endpoint, attempted_at)
    payload = signing.body(delivery.event)
    headers = signing.headers(
        delivery.event["public_id"], payload, sent_at, secret, previous_secret=previous
    )
    answer = sender.post(endpoint["url"], payload, headers, timeout=timeout)
    return _Sent(delivery, answer, attempted_at, sent_at)


def _record_successes(session: Session, endpoint: Mapping[str, Any], sent: list[_Sent]) -> None:
    """Log the attempts that got a 2xx and mark their deliveries `succeeded` (unless one
    finished meanwhile: a lease ran out and another job sent it; the log has this attempt, the
    outcome stands), in three statements however many there are. The caller commits."""
    if not sent:
        return
    now = clock.utcnow()
    d, ep = webhook_deliveries, webhook_endpoints
    session.execute(webhook_attempts.insert(), [attempt.log_row(endpoint) for attempt in sent])
    pending = d.c.status == "pending"
    session.execute(
        update(d)
        .where(d.c.id.in_([attempt.delivery.id for attempt in sent]))
        .values(
            attempts=d.c.attempts + 1,
            status=case((pending, "succeeded"), else_=d.c.status),
            finished_at=case((pending, now), else_=d.c.finished_at),
            next_attempt_at=case((pending, None), else_=d.c.next_attempt_at),
        )
    )
    # Written only when it changes: a healthy endpoint's row is not rewritten per delivery.
    session.execute(
        update(ep)
        .where(ep.c.id == endpoint["id"], ep.c.failing_since.is_not(None))
        .values(failing_since=None)
    )


def _record_failure(
    session: Session, endpoint: Mapping[str, Any], attempt: _Sent, rng: RandomSource
) -> None:
    """Log an attempt that got no 2xx and schedule the delivery's next one (or fail it); a 410
    or five days of failures disable the endpoint. The caller commits."""
    now = clock.utcnow()
    d, ep = webhook_deliveries, webhook_endpoints
    session.execute(webhook_attempts.insert().values(**attempt.log_row(endpoint)))
    delivery_id = attempt.delivery.id
    attempts = session.execute(
        update(d)
        .where(d.c.id == delivery_id)
        .values(attempts=d.c.attempts + 1)
        .returning(d.c.attempts, d.c.status)
    ).one()
    if attempts.status != "pending":
        return  # finished meanwhile, as above
    answer = attempt.answer
    wait = next_wait(attempts.attempts, answer.retry_after, sent_at=attempt.sent_at, rng=rng)
    if wait is None:
        values: dict[str, Any] = {"status": "failed", "finished_at": now, "next_attempt_at": None}
    else:
        values = {"next_attempt_at": now + wait}
    session.execute(update(d).where(d.c.id == delivery_id).values(**values))
    failing_since = session.execute(
        update(ep)
        .where(ep.c.id == endpoint["id"])
        .values(failing_since=func.coalesce(ep.c.failing_since, now))
        .returning(ep.c.failing_since)
    ).scalar_one()
    if answer.status == 410:
        disable(session, endpoint["id"], "gone", now)
    elif failing_since is not None and now - failing_since >= FAILING_LIMIT:
        disable(session, endpoint["id"], "failing", now)


def disable(session: Session, endpoint_id: int, reason: str, now: datetime) -> bool:
    """Turn an enabled endpoint off for `reason` ("gone", "failing") and tell its merchant (an
    outbox event `webhook_endpoint.disabled`). False when it was already off. The caller
    commits."""
    ep = webhook_endpoints
    turned_off = session.execute(
        update(ep)
        .where(ep.c.id == endpoint_id, ep.c.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason, disabled_at=now)
        .returning(ep.c.public_id, ep.c.url, ep.c.merchant_id)
    ).first()
    if turned_off is None:
        return False
    log.warning("webhook endpoint %s disabled: %s", turned_off.public_id, reason)
    outbox.emit(
        session,
        "webhook_endpoint.disabled",
        {
            "endpoint": {
                "id": turned_off.public_id,
                "url": turned_off.url,
                "disabled_reason": reason,
            }
        },
        now,
        merchant_id=turned_off.merchant_id,
    )
    return True
