"""The application shell as an operator meets it: the health probes a load balancer asks, the
request id that ties a caller's report to the logs, the migrations that build the database the
models expect, and the `coalition` command that builds it from nothing."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from coalition.extensions import db
from coalition.ledger.verify import CHECKS

COALITION = str(Path(sys.executable).with_name("coalition"))


@pytest.mark.both_backends
def test_the_liveness_probe_answers_without_asking_anything_else(app):
    response = app.test_client().get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


@pytest.mark.both_backends
def test_ready_on_the_embedded_default_means_the_database_answers_and_jobs_run_in_process(app):
    response = app.test_client().get("/readyz")

    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "not configured (jobs run in-process)"},
    }


def test_ready_with_redis_means_redis_answers_too(make_app, redis_url):
    response = make_app(REDIS_URL=redis_url).test_client().get("/readyz")

    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_not_ready_when_the_configured_redis_is_down_names_redis_as_a_problem(make_app):
    response = make_app(REDIS_URL="redis://127.0.0.1:1/0").test_client().get("/readyz")

    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    problem = response.get_json(force=True)
    assert problem["status"] == 503
    assert problem["code"] == "not_ready"
    assert problem["detail"] == "a dependency is unavailable: redis"
    assert problem["checks"] == {"database": "ok", "redis": "unavailable"}


def test_not_ready_when_the_database_does_not_answer_names_the_database(make_app):
    missing = "postgresql://postgres@127.0.0.1:5432/coalition_no_such_database"
    response = make_app(DATABASE_URL=missing).test_client().get("/readyz")

    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    problem = response.get_json(force=True)
    assert problem["code"] == "not_ready"
    assert problem["detail"] == "a dependency is unavailable: database"
    assert problem["checks"]["database"] == "unavailable"


@pytest.mark.both_backends
def test_every_response_carries_a_request_id_and_each_request_gets_its_own(app):
    client = app.test_client()

    ids = [client.get(path).headers.get("X-Request-Id") for path in ("/healthz", "/nowhere")]

    assert all(ids), ids
    assert ids[0] != ids[1]
    assert all(re.fullmatch("[0-9a-f]{32}", i) for i in ids), ids


@pytest.mark.both_backends
def test_a_callers_sane_request_id_is_echoed_back(app):
    response = app.test_client().get("/healthz", headers={"X-Request-Id": "lb-7f3a.client_42"})

    assert response.headers["X-Request-Id"] == "lb-7f3a.client_42"


@pytest.mark.both_backends
@pytest.mark.parametrize("given", ["two words", "x" * 300, "<script>", "id;rm -rf", ""], ids=repr)
def test_a_request_id_unfit_for_the_logs_is_replaced_by_a_fresh_one(app, given):
    response = app.test_client().get("/healthz", headers={"X-Request-Id": given})

    assert re.fullmatch("[0-9a-f]{32}", response.headers["X-Request-Id"])


@pytest.mark.both_backends
def test_a_request_id_ending_in_a_newline_is_replaced_rather_than_breaking_the_response(app):
    # A server may pass a header value through as it came; the test client refuses to send one.
    response = app.test_client().get("/healthz", environ_base={"HTTP_X_REQUEST_ID": "abc\n"})

    assert response.status_code == 200
    assert re.fullmatch("[0-9a-f]{32}", response.headers["X-Request-Id"])


@contextmanager
def json_log() -> Iterator[io.StringIO]:
    """What the platform's log handler (set up by the latest `create_app`) writes, instead of
    stderr, while inside."""
    [handler] = [h for h in logging.getLogger().handlers if getattr(h, "_coalition", False)]
    assert isinstance(handler, logging.StreamHandler)
    lines = io.StringIO()
    stderr = handler.setStream(lines)
    try:
        yield lines
    finally:
        handler.setStream(stderr)


def test_the_logs_of_a_request_are_json_lines_carrying_its_request_id(make_app):
    # The Redis check fails and logs why; the operator finds it by the caller's request id.
    probed = make_app(REDIS_URL="redis://127.0.0.1:1/0")

    with json_log() as lines:
        response = probed.test_client().get("/readyz", headers={"X-Request-Id": "probe-1234"})
        logging.getLogger("coalition.test").warning("after the request")

    assert response.status_code == 503
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    [during] = [r for r in records if r["message"] == "readiness: redis unavailable"]
    assert during["request_id"] == "probe-1234"
    assert during["level"] == "WARNING"
    assert during["logger"] == probed.logger.name
    assert "ConnectionError" in during["exc_info"]
    assert "time" in during
    [after] = [r for r in records if r["message"] == "after the request"]
    assert after["request_id"] == "-"


@pytest.mark.both_backends
def test_the_migrations_build_exactly_the_tables_the_models_describe(app):
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={**app.extensions["migrate"].configure_args, "compare_server_default": True},
        )
        differences = compare_metadata(context, db.metadata)

    assert differences == []


def _coalition(*args: str, database: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    environ.update(
        DATABASE_URL=f"sqlite:///{database}",
        COALITION_ENV="development",
        SECRET_KEY="cli-test-secret",
        LOG_LEVEL="WARNING",
    )
    return subprocess.run(
        [COALITION, *args], env=environ, capture_output=True, text=True, timeout=120, check=False
    )


def test_coalition_db_upgrade_builds_a_working_sqlite_database_from_nothing(tmp_path):
    database = tmp_path / "fresh" / "coalition.db"
    database.parent.mkdir()

    upgraded = _coalition("db", "upgrade", database=database)
    assert upgraded.returncode == 0, upgraded.stderr

    verified = _coalition("verify-ledger", database=database)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    lines = verified.stdout.splitlines()
    assert len(lines) == len(CHECKS)
    assert all(line.startswith("ok ") for line in lines), verified.stdout
    with sqlite3.connect(database) as connection:
        operators = connection.execute(
            "SELECT count(*) FROM accounts WHERE kind = 'operator'"
        ).fetchone()
    connection.close()
    assert operators == (1,)
