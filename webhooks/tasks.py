"""Running the webhooks (SPEC 3.6, decision 243): a pump that fans new events out and hands each
endpoint with due deliveries to a delivery job, one job per endpoint at a time.

- With `REDIS_URL`, `coalition worker` runs the pump as a process of its own
  (`coalition webhooks pump`, every `PUMP_INTERVAL` seconds) and a pool of RQ workers on the
  `webhooks` queue (`coalition webhooks worker`, `--webhook-workers`, default 4). The pump
  enqueues `deliver(endpoint_id)` once a Redis key for the endpoint is set (`SET NX`, expiring
  with the lease), so the queue holds at most one job per endpoint.
- On the embedded default, `coalition serve` runs the pump on a thread beside the in-process
  schedule, handing endpoints to a few delivery threads (`DeliveryThreads`).
- Under `COALITION_ENV=testing` nothing runs in the background: tests call `pump_once`, which
  delivers inline, or `deliver`.

What is due is read from the database, never from Redis: losing Redis, a queued job or a worker
loses nothing. A job killed mid-batch leaves its deliveries leased; when the lease (and the
endpoint's key) runs out the pump hands them out again. On PostgreSQL each job also holds an
advisory lock on its endpoint, so two jobs never work one endpoint even if a key was lost."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import rq
from flask import Flask, current_app
from redis import RedisError

from coalition import clock, tenancy
from coalition.extensions import db
from coalition.jobs import advisory_lock, redis_connection, task
from webhooks import delivery, dispatch
from webhooks.transport import transport_for

log = logging.getLogger(__name__)

QUEUE = "webhooks"
PUMP_INTERVAL = 0.5
MAX_BACKOFF_SECONDS = 5.0
# Per pump round, at most this many batches of each kind: a backlog is worked off over several
# rounds, and deliveries keep being handed out meanwhile.
DISPATCH_BATCHES = 20
UNHEARD_CHUNKS = 20
DELIVERY_THREADS = 4
# The advisory lock space of "one job per endpoint" (`jobs.exclusive` uses 0x636F61).
ENDPOINT_LOCK_SPACE = 0x776831
KEY = "coalition:webhooks:endpoint:{}"

Handoff = Callable[[int], bool]


def timeout_seconds(app: Flask) -> float:
    return float(app.config["WEBHOOKS_TIMEOUT_SECONDS"])


def _lease_seconds(app: Flask) -> int:
    return int(delivery.lease_for(timeout_seconds(app)).total_seconds())


@dataclass(frozen=True)
class Pumped:
    unheard: int
    dispatched: int
    due_endpoints: int
    handed: int


def pump_once(now: datetime | None = None, handoff: Handoff | None = None) -> Pumped:
    """One round of the pump, in an app context: mark what nobody hears, fan out new events
    (bounded batches, one transaction each), then hand every endpoint with due deliveries to a
    delivery job (`handoff`; by default the app's: RQ, delivery threads or, testing, inline)."""
    with tenancy.acting_as(tenancy.SYSTEM):
        session = db.session()
        moment = now or clock.utcnow()
        unheard = dispatched = 0
        for _ in range(UNHEARD_CHUNKS):
            marked = dispatch.mark_unheard(session, moment)
            session.commit()
            unheard += marked
            if marked < dispatch.SILENT_CHUNK:
                break
        for _ in range(DISPATCH_BATCHES):
            done = dispatch.fan_out(session, moment)
            session.commit()
            dispatched += done
            if done < dispatch.BATCH:
                break
        due = delivery.due_endpoints(session, now or clock.utcnow())
        session.commit()
    give = handoff or _default_handoff(current_app._get_current_object())  # type: ignore[attr-defined]
    handed = sum(1 for endpoint_id in due if give(endpoint_id))
    return Pumped(unheard, dispatched, len(due), handed)


def _default_handoff(app: Flask) -> Handoff:
    if app.config["REDIS_URL"]:
        return RqHandoff(app)
    threads: DeliveryThreads | None = app.extensions.get("webhooks.threads")
    if threads is not None:
        return threads.submit
    return _inline


def _inline(endpoint_id: int) -> bool:
    deliver(endpoint_id)
    return True


@task
def deliver(endpoint_id: int) -> dict[str, Any]:
    """The delivery job: work one endpoint's due deliveries (`delivery.work_endpoint`), unless
    another job works it now."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        with _endpoint_lock(endpoint_id) as mine:
            if not mine:
                return {"skipped": True}
            worked = delivery.work_endpoint(
                db.session(),
                endpoint_id,
                transport_for(app),
                timeout=timeout_seconds(app),
                rng=random_source,
            )
            return asdict(worked)
    finally:
        if app.config["REDIS_URL"]:
            try:
                redis_connection(app).delete(KEY.format(endpoint_id))
            except RedisError:
                log.warning("could not clear the job key of endpoint %s", endpoint_id)


# Jitter's source: tests replace it to make the schedule exact.
random_source: delivery.RandomSource = random.random


@contextmanager
def _endpoint_lock(endpoint_id: int) -> Iterator[bool]:
    """On PostgreSQL, a session advisory lock on the endpoint (`jobs.advisory_lock`): the job
    waits on the network while it holds it, and it goes with the connection if the process
    dies. Elsewhere one process runs the pump and its threads."""
    with advisory_lock(ENDPOINT_LOCK_SPACE, endpoint_id & 0x7FFFFFFF) as mine:
        yield mine


class RqHandoff:
    """Enqueue `deliver` on the `webhooks` queue unless the endpoint's key says a job is queued
    or running. The key expires with the lease: a job lost with its worker or with Redis is
    replaced once its deliveries come due again."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.ttl = _lease_seconds(app)

    def __call__(self, endpoint_id: int) -> bool:
        connection = redis_connection(self.app)
        key = KEY.format(endpoint_id)
        if not connection.set(key, "queued", nx=True, ex=self.ttl):
            return False
        try:
            rq.Queue(QUEUE, connection=connection).enqueue(
                deliver,
                endpoint_id,
                job_timeout=self.ttl,
                result_ttl=0,
                failure_ttl=86400,
            )
        except Exception:
            connection.delete(key)
            raise
        return True


class DeliveryThreads:
    """The embedded default's delivery jobs: a few threads, one job per endpoint at a time."""

    def __init__(self, app: Flask, threads: int = DELIVERY_THREADS) -> None:
        self.app = app
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhooks")
        self.running: set[int] = set()
        self.lock = threading.Lock()

    def submit(self, endpoint_id: int) -> bool:
        with self.lock:
            if endpoint_id in self.running:
                return False
            self.running.add(endpoint_id)
        future = self.executor.submit(self._run, endpoint_id)
        future.add_done_callback(lambda _f: self._done(endpoint_id))
        return True

    def _run(self, endpoint_id: int) -> dict[str, Any]:
        with self.app.app_context():
            try:
                return deliver(endpoint_id)
            except Exception:
                log.exception("webhook delivery job for endpoint %s failed", endpoint_id)
                raise

    def _done(self, endpoint_id: int) -> None:
        with self.lock:
            self.running.discard(endpoint_id)

    def close(self) -> None:
        """Run no more jobs; wait for those running (each ends within its budget and one
        timeout)."""
        self.executor.shutdown(wait=True, cancel_futures=True)


def run_pump(
    app: Flask,
    stop: threading.Event,
    handoff: Handoff | None = None,
    interval: float = PUMP_INTERVAL,
) -> None:
    """Pump until `stop` is set: a round every `interval` seconds, at once again while a round
    found a full backlog. A failing round (the database or Redis away) is logged and tried
    again, less often while the failures last (up to `MAX_BACKOFF_SECONDS`)."""
    failures = 0
    while not stop.is_set():
        wait = interval
        with app.app_context():
            try:
                pumped = pump_once(handoff=handoff)
                if pumped.dispatched >= dispatch.BATCH * DISPATCH_BATCHES:
                    wait = 0
                failures = 0
            except RedisError as exc:
                failures += 1
                log.warning("webhooks pump: Redis unavailable (%s); jobs wait", exc)
            except Exception:
                failures += 1
                log.exception("webhooks pump round failed")
        if failures:
            wait = min(interval * 2**failures, MAX_BACKOFF_SECONDS)
        stop.wait(wait)


def run_in_process(app: Flask, stop: threading.Event) -> None:
    """The embedded default's pump (`coalition serve` without Redis, beside the in-process
    schedule): delivery threads of this process. Nothing with Redis (`coalition worker` pumps)
    nor under testing."""
    if app.config["REDIS_URL"] or app.config["COALITION_ENV"] == "testing":
        return
    threads = DeliveryThreads(app)
    app.extensions["webhooks.threads"] = threads
    try:
        run_pump(app, stop, handoff=threads.submit)
    finally:
        threads.close()
