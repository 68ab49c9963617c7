"""Delivery (SPEC 3.6): the due deliveries of one endpoint sent, each attempt written to the log,
and the delivery and its endpoint moved on by the answer.

- A job works one endpoint (decision 244): it leases a few due deliveries at a time (moving their
  `next_attempt_at` forward by `lease`, `FOR UPDATE SKIP LOCKED`), sends them one by one, and
  stops after `BUDGET_SECONDS` of work or at the first attempt that got no answer (a timeout, a
  refused connection): a dead endpoint holds a worker for at most one timeout. What it leased and
  did not send is given back as it was. A worker killed mid-batch only delays its leased
  deliveries until the lease ends; then the pump hands them out again.
- Each attempt signs with the endpoint's secrets as they are when it is sent (a rotation takes
  effect at the next attempt), the signature's timestamp being the real time of the send.
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

from sqlalchemy import bindparam, exists, func, select, update
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
    spent, an attempt gets no answer or the endpoint is disabled. Commits after each lease and
    each attempt: what is written stays written whatever happens next."""
    started = time.monotonic()
    attempted = succeeded = 0
    while True:
        leased = _lease(session, endpoint_id, clock.utcnow(), timeout=timeout, limit=chunk)
        session.commit()
        if not leased:
            return Worked(attempted, succeeded)
        for index, delivery in enumerate(leased):
            stop: str | None = None
            unsent = leased[index:]
            if time.monotonic() - started >= budget_seconds:
                stop = "budget"
            else:
                result = _attempt(session, endpoint_id, delivery, sender, timeout=timeout, rng=rng)
                session.commit()
                if result is None:
                    stop = "disabled"
                else:
                    unsent = leased[index + 1 :]
                    attempted += 1
                    succeeded += result.status is not None and 200 <= result.status < 300
                    if result.status is None:
                        stop = "no_answer"
            if stop is not None:
                _give_back(session, unsent)
                session.commit()
                return Worked(attempted, succeeded, stop)


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


def _attempt(
    session: Session,
    endpoint_id: int,
    delivery: _Leased,
    sender: Sender,
    *,
    timeout: float,
    rng: RandomSource,
) -> Answered | None:
    """One attempt at one delivery, recorded; None (and nothing sent) when the endpoint is no
    longer enabled."""
    endpoint: dict[str, Any] = dict(
        session.execute(select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))
        .mappings()
        .one()
    )
    # Read, not kept: the next statement's transaction is the one that records the answer.
    session.commit()
    if not endpoint["enabled"] or endpoint["deleted_at"] is not None:
        return None
    attempted_at = clock.utcnow()
    sent_at = datetime.now(UTC)  # the signature's timestamp is the real time, whatever the clock
    secret, previous = signing.signing_secrets(endpoint, attempted_at)
    payload = signing.body(delivery.event)
    headers = signing.headers(
        delivery.event["public_id"], payload, sent_at, secret, previous_secret=previous
    )
    answer = sender.post(endpoint["url"], payload, headers, timeout=timeout)
    _record(session, endpoint, delivery, answer, attempted_at, sent_at, rng)
    return answer


def _record(
    session: Session,
    endpoint: Mapping[str, Any],
    delivery: _Leased,
    answer: Answered,
    attempted_at: datetime,
    sent_at: datetime,
    rng: RandomSource,
) -> None:
    now = clock.utcnow()
    d, ep = webhook_deliveries, webhook_endpoints
    session.execute(
        webhook_attempts.insert().values(
            merchant_id=endpoint["merchant_id"],
            endpoint_id=endpoint["id"],
            delivery_id=delivery.id,
            attempted_at=attempted_at,
            status_code=answer.status,
            duration_ms=answer.duration_ms,
            error=answer.error[:ERROR_LENGTH] if answer.error else None,
        )
    )
    attempts = session.execute(
        update(d)
        .where(d.c.id == delivery.id)
        .values(attempts=d.c.attempts + 1)
        .returning(d.c.attempts, d.c.status)
    ).one()
    if attempts.status != "pending":
        # Finished meanwhile (a lease ran out and another job succeeded): the log has this
        # attempt, the outcome stands.
        return
    ok = answer.status is not None and 200 <= answer.status < 300
    if ok:
        session.execute(
            update(d)
            .where(d.c.id == delivery.id)
            .values(status="succeeded", finished_at=now, next_attempt_at=None)
        )
        # Written only when it changes: a healthy endpoint's row is not rewritten per delivery.
        session.execute(
            update(ep)
            .where(ep.c.id == endpoint["id"], ep.c.failing_since.is_not(None))
            .values(failing_since=None)
        )
        return
    wait = next_wait(attempts.attempts, answer.retry_after, sent_at=sent_at, rng=rng)
    if wait is None:
        values: dict[str, Any] = {"status": "failed", "finished_at": now, "next_attempt_at": None}
    else:
        values = {"next_attempt_at": now + wait}
    session.execute(update(d).where(d.c.id == delivery.id).values(**values))
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
