"""Background jobs (SPEC 3.8). With `REDIS_URL` set, jobs go to RQ queues and `coalition worker`
runs them, with RQ's own `rq cron` enqueuing the schedule in `coalition/schedule.py`. Without it
(the embedded default) the same functions run in-process: `enqueue` hands them to a background
thread, and `coalition serve` runs the schedule itself, the one `create_app` gave `init_app`.

RQ's cron neither catches up on missed runs nor stops two schedulers doing the same work, so
daily jobs go through `run_daily`: each closed business day is done once, in order, under a
lock, and a day missed while the scheduler was down is done by the next run.

Under gunicorn the in-process schedule runs on a thread of one worker (`InProcessScheduler`),
never in the master: a thread or a database connection must not cross a fork (decision 83)."""

from __future__ import annotations

import fcntl
import functools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any, ParamSpec, TypeVar
from zlib import crc32

import rq
from flask import Flask, current_app, has_app_context
from redis import Redis
from sqlalchemy import Date, String, insert, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from coalition import clock, tenancy
from coalition.database import UTCDateTime, table
from coalition.extensions import Base, db
from coalition.logs import correlation_id

log = logging.getLogger(__name__)

QUEUES = ("default", "ledger", "settlement", "webhooks")
# After a longer outage only the last this many days are done; older ones are left, logged.
MAX_CATCH_UP_DAYS = 366

P = ParamSpec("P")
R = TypeVar("R")
DailyJob = Callable[[date, datetime], None]
# (job, queue, cron fields): what runs when, for `rq cron` and for `run_schedule` alike.
Schedule = Sequence[tuple[Callable[[], Any], str, str]]
# What runs continuously beside the in-process schedule (the webhooks' pump), each on a thread
# of its own until the event is set.
Loop = Callable[[Flask, threading.Event], None]


class DailyRun(Base):
    """A daily job done for one business day."""

    __tablename__ = "daily_runs"

    job: Mapped[str] = mapped_column(String(80), primary_key=True)
    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())


daily_runs = table(DailyRun)


def redis_connection(app: Flask) -> Redis:
    connection = app.extensions.get("coalition.redis")
    if connection is None:
        connection = Redis.from_url(
            app.config["REDIS_URL"], socket_timeout=5, socket_connect_timeout=2
        )
        app.extensions["coalition.redis"] = connection
    return connection


class Worker(rq.Worker):
    """RQ's forking worker, made safe for SQLAlchemy: the work horse forgets the pooled database
    connections it inherited (without closing them under the parent) and opens its own."""

    def main_work_horse(self, job: Any, queue: Any) -> None:
        if has_app_context():
            db.engine.dispose(close=False)
        super().main_work_horse(job, queue)


_worker_app: Flask | None = None
_worker_app_lock = threading.Lock()


def task(fn: Callable[P, R]) -> Callable[P, R]:
    """Make a job function runnable anywhere: inside an app context it just runs; in an RQ
    worker process it builds the app once and runs inside its context. A job acts as the
    system tenant (it may touch every merchant's rows)."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with tenancy.acting_as(tenancy.SYSTEM):
            return _in_app(*args, **kwargs)

    def _in_app(*args: P.args, **kwargs: P.kwargs) -> R:
        if has_app_context():
            return fn(*args, **kwargs)
        global _worker_app
        with _worker_app_lock:
            if _worker_app is None:
                from coalition import create_app

                _worker_app = create_app()
        with _worker_app.app_context():
            return fn(*args, **kwargs)

    return run


class InProcessRunner:
    """Runs enqueued jobs on one background thread, each in its own app context. `inline`
    runs them at once in the caller's thread (tests, one-shot commands)."""

    def __init__(self, app: Flask, inline: bool) -> None:
        self.app = app
        self.inline = inline
        self._executor: ThreadPoolExecutor | None = None

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        if self.inline:
            future: Future[Any] = Future()
            try:
                future.set_result(fn(*args, **kwargs))
            except Exception as exc:
                log.exception("in-process job %s failed", fn.__name__)
                future.set_exception(exc)
            return future
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coalition-job")
        return self._executor.submit(self._in_context, fn, args, kwargs)

    def _in_context(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        with self.app.app_context():
            try:
                return fn(*args, **kwargs)
            except Exception:
                log.exception("in-process job %s failed", fn.__name__)
                raise


def run_schedule(app: Flask, stop: threading.Event) -> None:
    """Run the app's schedule (`init_app`) in this process until `stop` is set: every job once
    at once (catching up after any downtime), then each at its next time."""
    from croniter import croniter

    schedule: Schedule = app.extensions["coalition.schedule"]

    def run(function: Callable[[], Any]) -> None:
        with app.app_context():
            try:
                function()
            except Exception:
                log.exception("scheduled job %s failed", function.__name__)

    for function, _queue, _when in schedule:
        if stop.is_set():
            return
        run(function)
    while not stop.is_set():
        now = datetime.now().astimezone()
        due, function = min(
            ((croniter(when, now).get_next(datetime), function) for function, _q, when in schedule),
            key=lambda pair: pair[0],
        )
        if stop.wait(max((due - datetime.now().astimezone()).total_seconds(), 0)):
            return
        run(function)


# A worker that finds the schedule taken looks again this often: when the worker running it
# dies, another takes it over (and catches up) within this many seconds.
TAKE_OVER_SECONDS = 30.0
# A loop told to stop finishes what it is doing (a webhook delivery job) within this.
LOOP_STOP_SECONDS = 60.0


class InProcessScheduler:
    """The embedded default's scheduler under gunicorn: every worker starts one after it is
    forked, and the one holding an exclusive `flock` on the server's lock file runs the
    schedule and the loops (the webhooks' pump), so a server has one whatever its number of
    workers. The others wait to take
    over: the lock goes with the process that held it, however it ends."""

    def __init__(self, app: Flask, lock_path: str) -> None:
        self.app = app
        self.lock_path = lock_path
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="coalition-schedule", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()

    def _run(self) -> None:
        # An opening of our own (flock is per opening), made again should a cleaner remove it.
        with open(self.lock_path, "ab") as handle:
            while not self.stop.is_set():
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    self.stop.wait(TAKE_OVER_SECONDS)
                    continue
                log.debug("this process runs the job schedule")
                loops = [
                    threading.Thread(
                        target=loop,
                        args=(self.app, self.stop),
                        name=f"coalition-{loop.__name__}",
                        daemon=True,
                    )
                    for loop in self.app.extensions.get("coalition.loops", ())
                ]
                for thread in loops:
                    thread.start()
                run_schedule(self.app, self.stop)
                for thread in loops:
                    thread.join(timeout=LOOP_STOP_SECONDS)
                return


def init_app(app: Flask, schedule: Schedule, loops: Sequence[Loop] = ()) -> None:
    """Give the app its job runner, the schedule `coalition serve` runs in-process and the loops
    it runs beside it."""
    app.extensions["coalition.schedule"] = schedule
    app.extensions["coalition.loops"] = tuple(loops)
    app.extensions["coalition.daily_jobs"] = {}
    app.extensions["coalition.inprocess"] = InProcessRunner(
        app, inline=app.config["COALITION_ENV"] == "testing"
    )


def enqueue(fn: Callable[..., Any], *args: Any, queue: str = "default", **kwargs: Any) -> Any:
    """Run `fn(*args, **kwargs)` in the background: on RQ when Redis is configured, else
    in-process. `fn` must be a module-level function wrapped with `task`."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.config["REDIS_URL"]:
        return rq.Queue(queue, connection=redis_connection(app)).enqueue(fn, *args, **kwargs)
    return app.extensions["coalition.inprocess"].submit(fn, *args, **kwargs)


def register_daily(app: Flask, name: str, job: DailyJob) -> None:
    """Declare a job to be run once for every closed business day, in order."""
    app.extensions["coalition.daily_jobs"][name] = job


@contextmanager
def exclusive(name: str) -> Iterator[bool]:
    """On PostgreSQL, an advisory lock per job name (`advisory_lock`): yields False when
    another process holds it. SQLite serialises writers itself."""
    with advisory_lock(0x636F61, crc32(name.encode()) & 0x7FFFFFFF) as mine:
        yield mine


@contextmanager
def advisory_lock(space: int, key: int) -> Iterator[bool]:
    """On PostgreSQL, a session advisory lock on (`space`, `key`), held by a connection of its
    own outside any transaction (a job may wait on the network while it holds it, decision 82,
    and a server's `idle_in_transaction_session_timeout` must not end it): yields False when
    another process holds it. The lock goes with the connection if the process dies.
    Elsewhere it yields True: one process runs the jobs."""
    engine = db.engine
    if engine.dialect.name != "postgresql":
        yield True
        return
    keys = {"space": space, "key": key}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        got = connection.execute(text("SELECT pg_try_advisory_lock(:space, :key)"), keys)
        if not got.scalar_one():
            yield False
            return
        try:
            yield True
        finally:
            try:
                connection.execute(text("SELECT pg_advisory_unlock(:space, :key)"), keys)
            except Exception:
                # Never back into the pool still holding the lock: close it instead.
                connection.invalidate()
                raise


def _done_through(session: Session, name: str) -> date | None:
    return session.execute(
        select(daily_runs.c.business_date)
        .where(daily_runs.c.job == name)
        .order_by(daily_runs.c.business_date.desc())
        .limit(1)
    ).scalar_one_or_none()


def run_daily(name: str, job: DailyJob, now: datetime) -> list[date]:
    """Do `job` for every closed business day not yet done, oldest first; returns the days
    done. A job must be idempotent: a crash between its work and the record of it being done
    makes the next run repeat that day."""
    zone = current_app.config["COALITION_TIMEZONE"]
    today = clock.business_date(now, zone)
    done: list[date] = []
    with exclusive(name) as mine:
        if not mine:
            log.info("daily job %s is running elsewhere; skipped", name)
            return done
        last = _done_through(db.session(), name)
        db.session.rollback()
        first = today - timedelta(days=1)
        if last is not None:
            first = last + timedelta(days=1)
            oldest = today - timedelta(days=MAX_CATCH_UP_DAYS)
            if first < oldest:
                log.warning(
                    "daily job %s: days %s to %s are past the catch-up window; skipped",
                    name,
                    first.isoformat(),
                    (oldest - timedelta(days=1)).isoformat(),
                )
                first = oldest
        day = first
        while day < today:
            job(day, now)
            db.session.execute(
                insert(daily_runs).values(job=name, business_date=day, finished_at=clock.utcnow())
            )
            db.session.commit()
            log.info("daily job %s done for %s", name, day.isoformat())
            done.append(day)
            day += timedelta(days=1)
    return done


@task
def run_daily_jobs(now: str | None = None) -> dict[str, list[str]]:
    """The scheduled entry point (hourly): catch every daily job up to yesterday."""
    moment = datetime.fromisoformat(now) if now else clock.utcnow()
    token = correlation_id.set("daily-jobs")
    try:
        return {
            name: [d.isoformat() for d in run_daily(name, job, moment)]
            for name, job in current_app.extensions["coalition.daily_jobs"].items()
        }
    finally:
        correlation_id.reset(token)
