"""QUALITY W2 with real processes: a `coalition worker` (its pump and webhook workers are child
processes) delivers a stream of events from the committed PostgreSQL test database through a Redis
of the test's own; mid-stream the worker's whole process group is killed with SIGKILL, and later
Redis is shut down without saving (`redis-cli shutdown nosave`) and started again empty. Every
event must still arrive at every endpoint, verified with the Standard Webhooks library, and an
event that arrives twice carries the same `webhook-id` and body both times.

The shared Redis (6379) is never touched: the test starts its own `redis-server` on a free port."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from coalition import clock
from coalition.extensions import db
from tests import factories
from tests.webhooks.engine_helpers import SigningReceiver, endpoint, event
from tests.webhooks.receiver import Reply
from webhooks.models import webhook_deliveries

# Attempts time out after 1 s, so a job killed mid-lease holds its deliveries for 2 x 1 + 30 s
# (`webhooks.delivery.lease_for`) before the pump hands them out again.
TIMEOUT_SECONDS = "1"
EVENTS_PER_BURST = 60
_NO_PERSISTENCE = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
_WORKER = ("worker", "--no-cron", "--webhook-workers", "2")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Redis:
    """A throw-away redis-server on a free port, without persistence, as CI runs the shared one."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        assert server, "redis-server is not installed (CI installs and starts Redis)"
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), *_NO_PERSISTENCE, "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
        )
        _wait_for(lambda: self.ping(), "the test's Redis to answer")

    def ping(self) -> bool:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
        )
        return done.stdout.strip() == "PONG"

    def shutdown_nosave(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], check=False)
        assert self.process is not None
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class _Worker:
    """`coalition worker` in a process group of its own, so SIGKILL reaches all its children."""

    def __init__(self, environ: dict[str, str], log: Path) -> None:
        self.environ = environ
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from coalition.cli import main; main()", *_WORKER],
                env=self.environ,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill_group(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            self.kill_group()


def _wait_for(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _statuses(app) -> dict[str, int]:
    """How many deliveries are in each status."""
    d = webhook_deliveries
    with app.app_context():
        counted = db.session.execute(select(d.c.status, func.count()).group_by(d.c.status)).all()
        db.session.remove()
    return {status: count for status, count in counted}


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[_Redis]:
    redis_server = _Redis(tmp_path)
    redis_server.start()
    yield redis_server
    redis_server.stop()


def test_every_event_arrives_through_a_killed_worker_and_a_redis_lost_mid_stream(
    committed,
    make_app,
    webhook_ca,
    webhook_settings,
    postgres_url,
    receivers,
    chaos,
    tmp_path,
    record_property,
):
    # A receiver that takes 20 ms per request, so jobs are mid-lease when the worker dies.
    receiver = SigningReceiver(ca=webhook_ca[0], default=Reply(200, delay=0.02)).start()
    receivers.append(receiver)
    settings = {**webhook_settings, "WEBHOOKS_TIMEOUT_SECONDS": TIMEOUT_SECONDS}
    app = make_app(**settings, REDIS_URL=chaos.url)
    written: list[tuple[int, str]] = []  # (merchant, event id), as written
    with app.app_context():
        session = db.session
        since = clock.utcnow() - timedelta(minutes=1)
        shops = [factories.merchant(session) for _ in range(2)]
        hooks = [
            endpoint(session, shop, receiver, f"/{shop}/{n}", created_at=since)
            for shop in shops
            for n in range(2)
        ]
        session.commit()

    def burst() -> None:
        """Events written as the core writes them, a few at a time, committed."""
        with app.app_context():
            for index in range(EVENTS_PER_BURST):
                shop = shops[index % len(shops)]
                evt = event(db.session, "purchase.created", shop, clock.utcnow())
                db.session.commit()
                written.append((shop, evt))
                time.sleep(0.01)

    def arrived() -> int:
        return len(set(receiver.events()))

    environ = {
        **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
        "COALITION_ENV": "development",
        "DATABASE_URL": postgres_url,
        "REDIS_URL": chaos.url,
        "SECRET_KEY": "test-secret-key",
        "LOG_LEVEL": "INFO",
        **settings,
    }
    worker = _Worker(environ, tmp_path / "worker.log")
    worker.start()
    try:
        # 1. A burst while the worker runs; SIGKILL to its whole group once deliveries flow.
        writer = threading.Thread(target=burst)
        writer.start()
        receiver.wait_until(lambda: arrived() >= 10, timeout=30)
        worker.kill_group()
        killed_at = arrived()
        writer.join()
        worker.start()

        # 2. Redis is lost mid-stream: shut down without saving while a burst is written, then
        # started again empty. The worker waits for it (RQ retries its connection); were it to
        # have ended, it is started again, as a supervisor would.
        writer = threading.Thread(target=burst)
        writer.start()
        receiver.wait_until(lambda: arrived() >= killed_at + 10, timeout=30)
        chaos.shutdown_nosave()
        writer.join()
        chaos.start()
        assert worker.process is not None
        if worker.process.poll() is not None:
            worker.start()

        # 3. Everything arrives and every delivery is recorded as succeeded: what a killed job
        # had leased is sent again once its lease has run out (so it may arrive twice).
        expected = {
            (hook.path, evt) for hook in hooks for shop, evt in written if shop == hook.merchant_id
        }

        def everything_delivered() -> bool:
            arrivals = {(r.path, r.headers["webhook-id"]) for r in receiver.requests}
            return expected <= arrivals and _statuses(app) == {"succeeded": len(expected)}

        _wait_for(everything_delivered, "every delivery to succeed", timeout=120)
    finally:
        worker.stop()

    assert len(written) == 2 * EVENTS_PER_BURST
    # Each of the four endpoints got each of its merchant's events, at least once.
    assert len(expected) == 2 * len(written)
    # A duplicate is the same delivery again: the same webhook-id and the same body.
    bodies: dict[tuple[str, str], set[bytes]] = {}
    for request in receiver.requests:
        bodies.setdefault((request.path, request.headers["webhook-id"]), set()).add(request.body)
    assert all(len(b) == 1 for b in bodies.values())
    assert _statuses(app) == {"succeeded": len(expected)}
    twice = Counter((r.path, r.headers["webhook-id"]) for r in receiver.requests)
    duplicates = sum(n - 1 for n in twice.values())
    record_property(
        "summary",
        f"W2: {len(expected)} deliveries all arrived through kill -9 and Redis lost;"
        f" {duplicates} arrived twice, with the same webhook-id",
    )
