"""Test set-up, after Warehouse: a real PostgreSQL database made for this run and migrated with
the project's own migrations; each test runs inside a transaction that is rolled back; the ledger's
invariants are verified at the end of every test that touched it.

Tests run on PostgreSQL. Those marked `both_backends` run on SQLite too (the embedded default's
smoke run). PostgreSQL and Redis are required: when either is missing the run fails, it never
skips."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from flask_migrate import upgrade
from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from coalition import clock, create_app, economics, tenancy
from coalition.extensions import db
from coalition.ledger.verify import verify

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def pytest_configure(config: pytest.Config) -> None:
    # Factories and direct service calls act as the system; every HTTP request still starts as
    # nobody and acts only as the tenant its token names.
    tenancy.set_fallback(tenancy.SYSTEM)


def pytest_sessionstart(session: pytest.Session) -> None:
    problems = []
    try:
        psycopg.connect(ADMIN_URL, connect_timeout=5).close()
    except psycopg.Error as exc:
        problems.append(f"PostgreSQL at {ADMIN_URL}: {exc}")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        problems.append(f"Redis at {REDIS_URL}: {exc}")
    if problems:
        pytest.exit(
            "the suite needs its services; unavailable: " + "; ".join(problems), returncode=3
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Figures a test reports with `record_property("summary", ...)`, such as how many
    hypothesis examples ran, printed at the end of the run."""
    lines = [
        value
        for report in terminalreporter.stats.get("passed", [])
        for name, value in report.user_properties
        if name == "summary"
    ]
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(line)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker("both_backends") is not None
        metafunc.parametrize(
            "backend", ["postgresql", "sqlite"] if both else ["postgresql"], scope="session"
        )


def _environ(database_url: str) -> dict[str, str]:
    return {
        "COALITION_ENV": "testing",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key",
        "COALITION_TIMEZONE": "Europe/Berlin",
        # No test talks to Stripe itself: a closed local port refuses at once. Payment tests
        # point the gateway at a stand-in server (tests/stripe_standin.py).
        "STRIPE_API_BASE": "http://127.0.0.1:9",
        "LOG_LEVEL": "WARNING",
        # Tests of the limits themselves build an app with tight ones (`make_app`).
        "RATE_LIMIT_SIGNUP": "100000/hour",
        "RATE_LIMIT_SIGNIN": "100000/hour",
    }


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"coalition_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def app(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flask]:
    instance = tmp_path_factory.mktemp(f"instance-{backend}")
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{instance / 'coalition.db'}"
    application = create_app(_environ(url))
    with application.app_context():
        upgrade()
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    """`db.session`, inside a transaction rolled back after the test. Commits inside the code
    under test release savepoints of that transaction. After the test, every ledger invariant
    must hold."""
    with app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()
        factory = db.session.session_factory
        saved_class, saved_kw = factory.class_, dict(factory.kw)
        # A plain Session honours `bind`; Flask-SQLAlchemy's would pick the engine instead.
        factory.class_ = Session
        factory.kw = {"bind": connection, "join_transaction_mode": "create_savepoint"}
        db.session.remove()
        try:
            yield db.session
            violations = verify(db.session)
            assert not violations, f"ledger invariants broken: {violations}"
        finally:
            db.session.remove()
            # Terms a test wrote (and cached) are rolled back with it.
            economics.forget()
            factory.class_, factory.kw = saved_class, saved_kw
            outer.rollback()
            connection.close()


class _CommittingClient(FlaskClient):
    """Commits what the test wrote before each request, as a real client finds it committed:
    a request that rolls its own transaction back (a refusal) must not take the test's rows."""

    def open(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        db.session.commit()
        return super().open(*args, **kwargs)


@pytest.fixture
def client(app: Flask, session: Session) -> FlaskClient:
    """A test client whose requests run inside the test's rolled-back transaction."""
    return _CommittingClient(app, app.response_class, use_cookies=True)


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """Runs `coalition` commands on the test app as an operator types them:
    `runner.invoke(args=["verify-ledger", "--json"])`."""
    return app.test_cli_runner()


@pytest.fixture
def committed(app: Flask, backend: str) -> Iterator[Flask]:
    """For tests that need real commits from several connections (PostgreSQL only): afterwards
    the ledger must verify, then every table is emptied (the immutability triggers are bypassed
    for the clean-up only, as a superuser in replica mode)."""
    assert backend == "postgresql", "committed tests run on PostgreSQL"
    yield app
    with app.app_context():
        violations = verify(db.session)
        db.session.remove()
        tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        with db.engine.begin() as connection:
            connection.execute(text("SET LOCAL ROLE NONE"))  # the owner, not the app's role
            connection.execute(text("SET LOCAL session_replication_role = replica"))
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            connection.execute(
                text("INSERT INTO accounts (kind, balance, debt) VALUES ('operator', 0, 0)")
            )
            # The migration's first version of the economics, as a fresh database has it.
            connection.execute(
                insert(economics.EconomicsVersion.__table__).values(
                    effective_from=economics.BEGINNING,
                    terms=economics.DEFAULT_TERMS.to_json(),
                    actor_id="migration",
                    created_at=clock.utcnow(),
                )
            )
        economics.forget()
    assert not violations, f"ledger invariants broken: {violations}"


@pytest.fixture
def redis_url() -> Iterator[str]:
    connection = redis.Redis.from_url(REDIS_URL)
    connection.flushdb()
    yield REDIS_URL
    connection.flushdb()
    connection.close()


@pytest.fixture
def make_app(app: Flask, backend: str, postgres_url: str) -> Iterator[Callable[..., Flask]]:
    """Build another app on the run's (migrated) PostgreSQL database, with settings added to the
    test ones, e.g. `make_app(REDIS_URL=...)`. Its engine and Redis client are closed after."""
    assert backend == "postgresql", "make_app builds apps on the PostgreSQL test database"
    made: list[Flask] = []

    def make(**settings: str) -> Flask:
        application = create_app({**_environ(postgres_url), **settings})
        made.append(application)
        return application

    yield make
    for application in made:
        with application.app_context():
            db.engine.dispose()
        connection = application.extensions.get("coalition.redis")
        if connection is not None:
            connection.close()
