"""Background jobs as the operator relies on them: daily jobs done once for every closed business
day of the coalition's time zone, even after downtime; the expiry job members notice; and the same
job functions run in-process on the embedded default and by RQ workers when Redis is configured."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import redis
from flask import has_app_context
from rq import SimpleWorker
from rq.cron import CronScheduler
from rq.job import JobStatus
from sqlalchemy import insert, select

from coalition import jobs
from coalition.extensions import db
from coalition.idempotency import IdempotencyKey
from coalition.jobs import DailyRun, run_daily_jobs
from coalition.ledger import reads
from coalition.members.models import Member
from coalition.outbox import OutboxEvent
from coalition.schedule import SCHEDULE
from coalition.tasks import purge_idempotency_keys
from tests import factories as f
from tests import jobs_helpers
from tests.factories import T0

# 23:30 UTC on Monday 9 March is already Tuesday 10 March in Berlin (UTC+1 in winter): the
# business day just closed is Monday the 9th, where a UTC calendar would say Sunday the 8th.
LATE_MONDAY = datetime(2026, 3, 9, 23, 30, tzinfo=UTC)


@pytest.fixture
def days_done(app) -> Iterator[list[tuple[date, datetime]]]:
    """A daily job that records each (business day, now) it is called with."""
    calls: list[tuple[date, datetime]] = []
    jobs.register_daily(app, "count-days", lambda day, now: calls.append((day, now)))
    yield calls
    del app.extensions["coalition.daily_jobs"]["count-days"]


@pytest.fixture
def ran() -> Iterator[list[dict]]:
    jobs_helpers.RAN.clear()
    yield jobs_helpers.RAN
    jobs_helpers.RAN.clear()


def _run(now: datetime) -> list[date]:
    return [date.fromisoformat(d) for d in run_daily_jobs(now=now.isoformat())["count-days"]]


@pytest.mark.both_backends
def test_the_first_run_does_the_business_day_just_closed_in_the_coalitions_time_zone(
    session, days_done
):
    assert _run(LATE_MONDAY) == [date(2026, 3, 9)]
    assert days_done == [(date(2026, 3, 9), LATE_MONDAY)]


@pytest.mark.both_backends
def test_a_run_after_three_days_of_downtime_catches_up_each_missed_day_in_order(session, days_done):
    _run(LATE_MONDAY)
    days_done.clear()

    back = LATE_MONDAY + timedelta(days=3)
    assert _run(back) == [date(2026, 3, 10), date(2026, 3, 11), date(2026, 3, 12)]
    assert [day for day, _now in days_done] == [
        date(2026, 3, 10),
        date(2026, 3, 11),
        date(2026, 3, 12),
    ]


@pytest.mark.both_backends
def test_running_again_the_same_day_does_nothing(session, days_done):
    _run(LATE_MONDAY)
    days_done.clear()

    assert _run(LATE_MONDAY + timedelta(minutes=55)) == []
    assert days_done == []


@pytest.mark.both_backends
def test_the_day_a_job_crashed_on_is_done_again_by_the_next_run_and_only_that_day(session, app):
    attempts: list[date] = []

    def flaky(day, now):
        attempts.append(day)
        if day == date(2026, 3, 11) and attempts.count(day) == 1:
            raise RuntimeError("killed mid-job")

    jobs.register_daily(app, "flaky", flaky)
    try:
        run_daily_jobs(now=LATE_MONDAY.isoformat())
        with pytest.raises(RuntimeError, match="killed mid-job"):
            run_daily_jobs(now=(LATE_MONDAY + timedelta(days=3)).isoformat())
        db.session.rollback()  # what the end of the crashed job's app context does
        again = run_daily_jobs(now=(LATE_MONDAY + timedelta(days=3, hours=1)).isoformat())
    finally:
        del app.extensions["coalition.daily_jobs"]["flaky"]

    assert again["flaky"] == ["2026-03-11", "2026-03-12"]
    assert attempts == [
        date(2026, 3, 9),
        date(2026, 3, 10),
        date(2026, 3, 11),
        date(2026, 3, 11),
        date(2026, 3, 12),
    ]


@pytest.mark.both_backends
def test_after_more_than_a_year_down_a_daily_job_catches_up_at_most_a_year(session, days_done):
    _run(LATE_MONDAY)
    days_done.clear()

    done = _run(LATE_MONDAY + timedelta(days=3 * 365))

    today = date(2026, 3, 10) + timedelta(days=3 * 365)
    assert len(done) == jobs.MAX_CATCH_UP_DAYS
    assert done[0] == today - timedelta(days=jobs.MAX_CATCH_UP_DAYS)
    assert done[-1] == today - timedelta(days=1)


def _events(session, member_id, type):
    return (
        session.execute(
            select(OutboxEvent.data)
            .where(OutboxEvent.member_id == member_id, OutboxEvent.type == type)
            .order_by(OutboxEvent.id)
        )
        .scalars()
        .all()
    )


@pytest.mark.both_backends
def test_the_daily_expiry_takes_expired_points_and_warns_of_those_expiring_soon(session):
    shop = f.merchant(session)
    alice = f.member(session)
    now = T0 + timedelta(days=60)
    f.purchase(session, alice, shop, 30, expires_at=now - timedelta(days=2))
    f.purchase(session, alice, shop, 50, expires_at=now + timedelta(days=20))
    session.commit()
    assert reads.balance(session, alice, now)["balance"] == 80

    done = run_daily_jobs(now=now.isoformat())

    assert done["expire-points"] == [(now - timedelta(days=1)).date().isoformat()]
    assert reads.balance(session, alice, now)["balance"] == 50
    [expired] = _events(session, alice, "points.expired")
    assert expired["points"] == 30
    [notice] = _events(session, alice, "points.expiring")
    assert [lot["points"] for lot in notice["expiring"]] == [50]
    assert notice["expiring"][0]["expires_at"] == (now + timedelta(days=20)).isoformat()


@pytest.mark.both_backends
def test_the_daily_expiry_never_takes_or_warns_twice(session):
    shop = f.merchant(session)
    alice = f.member(session)
    now = T0 + timedelta(days=60)
    f.purchase(session, alice, shop, 30, expires_at=now - timedelta(days=2))
    f.purchase(session, alice, shop, 50, expires_at=now + timedelta(days=20))
    session.commit()
    run_daily_jobs(now=now.isoformat())

    same_day = run_daily_jobs(now=(now + timedelta(hours=1)).isoformat())
    next_day = run_daily_jobs(now=(now + timedelta(days=1)).isoformat())

    assert same_day["expire-points"] == []
    assert next_day["expire-points"] == [now.date().isoformat()]
    assert reads.balance(session, alice, now + timedelta(days=1))["balance"] == 50
    assert len(_events(session, alice, "points.expired")) == 1
    assert len(_events(session, alice, "points.expiring")) == 1


def _members(session) -> set[str]:
    return set(session.execute(select(Member.public_id)).scalars())


@pytest.mark.both_backends
def test_on_the_embedded_default_a_job_enqueued_in_tests_runs_at_once_in_the_callers_app(
    session, app, ran
):
    future = jobs.enqueue(jobs_helpers.open_member, "welcome")

    member = future.result(timeout=0)
    assert member in _members(session)
    [run] = ran
    assert run["app"] is app
    assert run["thread"] == threading.get_ident()


@pytest.mark.both_backends
def test_on_the_embedded_default_a_failing_job_does_not_fail_whoever_enqueued_it(session):
    future = jobs.enqueue(jobs_helpers.fail, "on purpose")

    assert isinstance(future.exception(timeout=0), RuntimeError)


@pytest.mark.both_backends
def test_an_unknown_queue_is_refused_before_anything_runs(session, ran):
    with pytest.raises(ValueError, match="unknown queue 'payments'"):
        jobs.enqueue(jobs_helpers.open_member, "lost", queue="payments")
    assert ran == []


def test_in_development_a_job_runs_on_a_background_thread_in_its_own_app_context(
    committed, make_app, ran
):
    development = make_app(COALITION_ENV="development")

    with development.app_context():
        future = jobs.enqueue(jobs_helpers.open_member, "in the background")
    member = future.result(timeout=30)

    [run] = ran
    assert run["app"] is development
    assert run["thread"] != threading.get_ident()
    with development.app_context():
        assert member in _members(db.session)


def test_a_job_lock_shuts_out_other_holders_until_released_even_by_an_error(app):
    """`exclusive` on PostgreSQL: one holder at a time per job name, across connections; the
    lock is let go when its holder leaves, by an error too."""
    with app.app_context():
        with (
            jobs.exclusive("settle") as first,
            jobs.exclusive("settle") as second,
            jobs.exclusive("other") as other,
        ):
            assert (first, second, other) == (True, False, True)
        with pytest.raises(RuntimeError), jobs.exclusive("settle"):
            raise RuntimeError("the job failed")
        with jobs.exclusive("settle") as again:
            assert again


def test_of_a_servers_workers_one_runs_the_schedule_and_another_takes_over_when_it_ends(
    app, tmp_path, monkeypatch
):
    """The embedded default under gunicorn: every worker starts a scheduler after its fork,
    one runs the schedule, and when that one ends (its worker stopped or died) another takes
    over."""
    running: list[str] = []
    # One for each worker: while the workers are closed one by one at the end, the last may
    # still take over from the one before it.
    started = [threading.Event() for _ in range(3)]

    def run_schedule(_app, stop: threading.Event) -> None:
        running.append(threading.current_thread().name)
        started[len(running) - 1].set()
        stop.wait()

    monkeypatch.setattr(jobs, "run_schedule", run_schedule)
    monkeypatch.setattr(jobs, "TAKE_OVER_SECONDS", 0.05)
    lock = tmp_path / "schedule.lock"
    lock.touch()
    workers = [jobs.InProcessScheduler(app, str(lock)) for _ in range(3)]
    for n, worker in enumerate(workers):
        worker.thread.name = f"worker-{n}"
        worker.start()
    try:
        assert started[0].wait(timeout=30)
        [first] = running
        workers[int(first[-1])].close()

        assert started[1].wait(timeout=30)
        assert running[1] != first and len(running) == 2
    finally:
        for worker in workers:
            worker.close()
            worker.thread.join(timeout=10)


def test_the_in_process_scheduler_runs_the_schedule_create_app_gave_it(app, monkeypatch):
    """`coalition serve` on the embedded default runs the app's schedule, the one `rq cron`
    reads: every job once at start, in the schedule's order."""
    assert app.extensions["coalition.schedule"] is SCHEDULE
    ran: list[str] = []
    stop = threading.Event()

    def first() -> None:
        ran.append("first")

    def second() -> None:
        ran.append("second")
        stop.set()

    schedule = ((first, "default", "5 * * * *"), (second, "default", "35 * * * *"))
    monkeypatch.setitem(app.extensions, "coalition.schedule", schedule)

    jobs.run_schedule(app, stop)

    assert ran == ["first", "second"]


def _work(app) -> None:
    worker = SimpleWorker(list(jobs.QUEUES), connection=jobs.redis_connection(app))
    worker.work(burst=True, logging_level="WARNING")


def test_with_redis_a_job_waits_in_its_queue_until_a_worker_runs_it(
    committed, make_app, redis_url, ran
):
    # `coalition worker` runs RQ inside the app's context (it is a Flask command), so the task
    # wrapper runs each job in that app.
    with_redis = make_app(REDIS_URL=redis_url)
    with with_redis.app_context():
        job = jobs.enqueue(jobs_helpers.open_member, "queued")
        assert job.get_status() == JobStatus.QUEUED
        assert ran == []

        _work(with_redis)

        assert job.get_status() == JobStatus.FINISHED
        assert job.return_value() in _members(db.session)
    [run] = ran
    assert run["app"] is with_redis


@pytest.fixture
def bare_worker_environment(monkeypatch, postgres_url, redis_url) -> Iterator[None]:
    """The environment of a plain `rq worker` process: no app context around its jobs, so the
    `task` wrapper builds the app from this environment (once per process)."""
    for name, value in {
        "COALITION_ENV": "testing",
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "worker-secret",
        "COALITION_TIMEZONE": "Europe/Berlin",
        "LOG_LEVEL": "WARNING",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(jobs, "_worker_app", None)
    yield
    if jobs._worker_app is not None:
        with jobs._worker_app.app_context():
            db.engine.dispose()


def _an_old_and_a_new_key() -> None:
    now = datetime.now(UTC)
    db.session.execute(
        insert(IdempotencyKey.__table__),
        [
            {
                "scope": "mer_1",
                "key": "old",
                "fingerprint": "a",
                "created_at": now - timedelta(days=2),
            },
            {
                "scope": "mer_1",
                "key": "new",
                "fingerprint": "b",
                "created_at": now - timedelta(hours=1),
            },
        ],
    )
    db.session.commit()


def test_the_coalition_worker_command_runs_a_queued_job_in_a_forked_work_horse(
    committed, make_app, redis_url
):
    with_redis = make_app(REDIS_URL=redis_url)
    with with_redis.app_context():
        _an_old_and_a_new_key()
        job = jobs.enqueue(purge_idempotency_keys)

    result = with_redis.test_cli_runner().invoke(args=["worker", "--burst"])

    assert result.exit_code == 0, result.output
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert job.return_value() == 1
    with with_redis.app_context():  # the parent's own connections survived the fork
        assert db.session.execute(select(IdempotencyKey.key)).scalars().all() == ["new"]


def test_a_plain_rq_worker_builds_the_app_from_its_environment_and_purges_old_keys(
    committed, make_app, redis_url, bare_worker_environment
):
    with_redis = make_app(REDIS_URL=redis_url)
    with with_redis.app_context():
        _an_old_and_a_new_key()
        job = jobs.enqueue(purge_idempotency_keys)

    assert not has_app_context()
    _work(with_redis)

    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == 1
    assert jobs._worker_app is not None and jobs._worker_app is not with_redis
    with with_redis.app_context():
        keys = db.session.execute(select(IdempotencyKey.key)).scalars().all()
    assert keys == ["new"]


@pytest.fixture
def cron(redis_url) -> Iterator[CronScheduler]:
    """RQ's scheduler with the project's schedule loaded, as `rq cron coalition.schedule` has it."""
    connection = redis.Redis.from_url(redis_url)
    scheduler = CronScheduler(connection=connection, logging_level="WARNING")
    scheduler.load_config_from_file("coalition.schedule")
    yield scheduler
    connection.close()


def test_rq_cron_loads_the_hourly_schedule_of_the_daily_jobs_and_the_key_purge(cron):
    assert [(job.func_name, job.queue_name, job.cron) for job in cron.get_jobs()] == [
        ("coalition.jobs.run_daily_jobs", "default", "5 * * * *"),
        ("coalition.tasks.purge_idempotency_keys", "default", "35 * * * *"),
        ("settlement.tasks.submit_payments", "settlement", "50 * * * *"),
        ("draws.tasks.close_due_draws", "default", "* * * * *"),
    ]


def test_what_rq_cron_enqueues_hourly_a_worker_turns_into_the_days_daily_jobs(
    committed, make_app, redis_url, cron
):
    with_redis = make_app(REDIS_URL=redis_url)
    [hourly] = [job for job in cron.get_jobs() if job.func_name.endswith("run_daily_jobs")]
    enqueued = hourly.enqueue(cron.connection)

    with with_redis.app_context():
        _work(with_redis)
        recorded = db.session.execute(select(DailyRun.job, DailyRun.business_date)).all()

    assert enqueued.get_status() == JobStatus.FINISHED
    [day] = enqueued.return_value()["expire-points"]
    # Every daily job did the day just closed, in the order they were declared.
    assert recorded == [
        (job, date.fromisoformat(day))
        for job in (
            "confirm-points",
            "expire-points",
            "recalculate-tiers",
            "premium-memberships",
            "evaluate-segments",
            "fraud-report",
            "settle",
            "statements",
            "cancel-overdue-orders",
            "insights",
        )
    ]
