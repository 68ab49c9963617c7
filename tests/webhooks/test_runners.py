"""The pump and its delivery jobs as they run for real (committed rows, several threads, Redis):
a slow endpoint never delays another's deliveries (decision 244), and what is due lives in the
database, so a lost queue or job loses nothing. Every request is verified (QUALITY W1)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import redis
from sqlalchemy import select

from coalition import clock, jobs
from coalition.extensions import db
from tests import factories
from tests.webhooks.engine_helpers import SigningReceiver, attempts, deliveries, endpoint, event
from tests.webhooks.receiver import Reply
from webhooks import tasks
from webhooks.cli import WebhookWorker
from webhooks.models import webhook_deliveries
from webhooks.tasks import KEY, QUEUE, DeliveryThreads, pump_once, run_pump

EVENTS = 12


@pytest.fixture
def two_receivers(receivers, webhook_ca):
    slow = SigningReceiver(ca=webhook_ca[0], default=Reply(200, delay=30)).start()
    fast = SigningReceiver(ca=webhook_ca[0]).start()
    receivers.extend([slow, fast])
    return slow, fast


def test_an_endpoint_that_hangs_never_delays_another_endpoints_deliveries(
    committed, make_app, webhook_settings, two_receivers
):
    slow, fast = two_receivers
    timeout = 0.5
    app = make_app(**{**webhook_settings, "WEBHOOKS_TIMEOUT_SECONDS": str(timeout)})
    with app.app_context():
        session = db.session
        slow_shop, fast_shop = factories.merchant(session, "Slow"), factories.merchant(session)
        since = clock.utcnow() - timedelta(minutes=1)
        hanging = endpoint(session, slow_shop, slow, created_at=since)
        quick = endpoint(session, fast_shop, fast, created_at=since)
        for _ in range(EVENTS):
            event(session, "purchase.created", slow_shop, clock.utcnow())
        session.commit()

    threads = DeliveryThreads(app, threads=2)
    stop = threading.Event()
    pump = threading.Thread(target=run_pump, args=(app, stop, threads.submit, 0.05))
    pump.start()
    try:
        slow.wait_for(1)  # the slow endpoint's job is hanging on its first attempt
        with app.app_context():
            for _ in range(EVENTS):
                event(db.session, "purchase.created", fast_shop, clock.utcnow())
            db.session.commit()
        started = time.monotonic()
        fast.wait_for(EVENTS, timeout=10)
        took = time.monotonic() - started
        slow.wait_for(3, timeout=10)  # and it is tried again, one attempt per job
    finally:
        stop.set()
        pump.join(timeout=10)
        threads.close()

    # Twelve deliveries behind a hanging endpoint would have waited at least twelve timeouts.
    assert took < EVENTS * timeout / 2, took
    assert len(set(fast.events())) == EVENTS
    with app.app_context():
        assert {d["status"] for d in deliveries(db.session, quick.id)} == {"succeeded"}
        log = attempts(db.session, hanging.id)
        assert log and {a["status_code"] for a in log} == {None}
        assert all(a["error"].startswith("timed out") for a in log)
        # Each job gave up at its first timeout: one attempt per job, the rest left due.
        assert {d["status"] for d in deliveries(db.session, hanging.id)} == {"pending"}
        attempted = db.session.execute(
            select(webhook_deliveries.c.attempts).where(
                webhook_deliveries.c.endpoint_id == hanging.id
            )
        ).scalars()
        assert sum(attempted) == len(log)


def test_with_redis_the_pump_queues_one_job_per_endpoint_and_a_lost_queue_loses_nothing(
    committed, make_app, webhook_settings, redis_url, receiver
):
    app = make_app(**webhook_settings, REDIS_URL=redis_url)
    with app.app_context():
        session = db.session
        shop = factories.merchant(session)
        hook = endpoint(session, shop, receiver, created_at=clock.utcnow() - timedelta(minutes=1))
        first = event(session, "purchase.created", shop, clock.utcnow())
        session.commit()
        connection = redis.Redis.from_url(redis_url)

        assert pump_once().handed == 1
        assert pump_once().handed == 0  # its job is queued: not a second one
        assert connection.llen(f"rq:queue:{QUEUE}") == 1

        # Redis loses everything (a restart without persistence): the delivery is still due in
        # the database, and the next round queues it again.
        connection.flushdb()
        assert pump_once().handed == 1
        WebhookWorker([QUEUE], connection=tasks.redis_connection(app)).work(burst=True)

        [request] = receiver.wait_for(1)
        assert receiver.verify(request)["id"] == first
        assert [d["status"] for d in deliveries(db.session, hook.id)] == ["succeeded"]
        assert connection.get(KEY.format(hook.id)) is None  # the job let its endpoint go
        assert pump_once().handed == 0
        connection.close()


def test_on_the_embedded_default_the_server_delivers_beside_its_schedule(
    committed, make_app, webhook_settings, receiver, tmp_path, monkeypatch
):
    """`coalition serve` without Redis: the worker holding the schedule also runs the pump and
    its delivery threads (`coalition.schedule.LOOPS`)."""
    monkeypatch.setattr(jobs, "run_schedule", lambda _app, stop: stop.wait())
    app = make_app(**webhook_settings, COALITION_ENV="development")
    with app.app_context():
        shop = factories.merchant(db.session)
        endpoint(db.session, shop, receiver, created_at=clock.utcnow() - timedelta(minutes=1))
        sent = event(db.session, "purchase.created", shop, clock.utcnow())
        db.session.commit()
    lock = tmp_path / "schedule.lock"
    lock.touch()
    server = jobs.InProcessScheduler(app, str(lock))
    server.start()
    try:
        [request] = receiver.wait_for(1, timeout=20)
    finally:
        server.close()
        server.thread.join(timeout=10)
    assert receiver.verify(request)["id"] == sent


def test_the_pump_outlives_redis_going_away_and_hands_the_work_out_when_it_is_back(
    session, webhook_app, receiver, moment
):
    shop = factories.merchant(session)
    hook = endpoint(session, shop, receiver)
    event(session, "purchase.created", shop, moment.now)
    stop = threading.Event()
    calls: list[int] = []

    def handoff(endpoint_id: int) -> bool:
        calls.append(endpoint_id)
        if len(calls) < 3:
            raise redis.ConnectionError("Connection refused")
        stop.set()
        return tasks._inline(endpoint_id)

    run_pump(webhook_app, stop, handoff, interval=0.01)

    assert calls == [hook.id] * 3
    [request] = receiver.wait_for(1)
    receiver.verify(request)
