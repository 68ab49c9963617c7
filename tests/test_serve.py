"""The README's way to run the platform, end to end: migrate a fresh SQLite database, start
`coalition serve`, and it answers over real HTTP, however often it is restarted."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

import pytest
import requests

from tests.stripe_standin import StripeStandIn

COALITION = str(Path(sys.executable).with_name("coalition"))
# How long the server may take to answer its first request: attempts of up to 0.2 s each.
START_ATTEMPTS = 150


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environ(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    environ.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'coalition.db'}",
        # gunicorn's control socket goes here rather than into the user's home.
        XDG_RUNTIME_DIR=str(tmp_path),
        COALITION_ENV="development",
        SECRET_KEY="serve-test-secret",
        LOG_LEVEL="WARNING",
    )
    return environ


def _get(url: str) -> tuple[int, dict]:
    with urlopen(url, timeout=5) as response:
        return response.status, json.loads(response.read())


def test_coalition_serve_answers_the_liveness_probe_on_a_fresh_sqlite_database(tmp_path):
    environ = _environ(tmp_path)
    migrated = subprocess.run(
        [COALITION, "db", "upgrade"], env=environ, capture_output=True, text=True, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr
    port = _free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    output = tmp_path / "serve.log"

    with output.open("w") as log:
        server = subprocess.Popen(
            [COALITION, "serve", "--port", str(port), "--workers", "1"],
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            answer = None
            for _attempt in range(START_ATTEMPTS):
                try:
                    answer = _get(url)
                    break
                except (URLError, ConnectionError):
                    # Not listening yet: wait a moment, failing at once if the server died.
                    try:
                        code = server.wait(timeout=0.2)
                    except subprocess.TimeoutExpired:
                        continue
                    pytest.fail(f"coalition serve exited with {code}:\n{output.read_text()}")
        finally:
            server.terminate()
            stopped = server.wait(timeout=30)

    assert answer == (200, {"status": "ok"}), output.read_text()
    assert stopped == 0, output.read_text()


# A client waits this long for any answer: far beyond a healthy one, short of forever.
CLIENT_TIMEOUT = 60


def _run(environ: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [COALITION, *args], env=environ, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@contextmanager
def _serving(environ: dict[str, str], log_path: Path, workers: int) -> Iterator[tuple[str, int]]:
    """`coalition serve` on a free port until the block ends, then stopped as Ctrl-C stops it;
    yields its address and its master's pid once it answers. It must stop cleanly."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with log_path.open("a") as log:
        server = subprocess.Popen(
            [COALITION, "serve", "--port", str(port), "--workers", str(workers)],
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            for _attempt in range(START_ATTEMPTS):
                try:
                    _get(f"{base}/healthz")
                    break
                except (URLError, ConnectionError):
                    try:
                        code = server.wait(timeout=0.2)
                    except subprocess.TimeoutExpired:
                        continue
                    pytest.fail(f"coalition serve exited with {code}:\n{log_path.read_text()}")
            yield base, server.pid
        finally:
            server.send_signal(signal.SIGINT)
            stopped = server.wait(timeout=60)
    assert stopped == 0, log_path.read_text()


@contextmanager
def _stripe_that_never_answers() -> Iterator[socket.socket]:
    """A listening socket that takes connections and answers nothing, as Stripe behind a
    broken network does: each call waits for its time-out, then is retried."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        yield listener


def _first_call(listener: socket.socket) -> str:
    """The request line of the first call that reached the listener."""
    listener.settimeout(CLIENT_TIMEOUT)
    connection, _ = listener.accept()
    with connection:
        connection.settimeout(CLIENT_TIMEOUT)
        return connection.recv(4096).split(b"\r\n", 1)[0].decode()


def _first_requests(base: str, till: dict[str, str], attempt: int) -> list[tuple[str, Any]]:
    """What users do the moment the server is up: tills ask for tokens all at once, and one
    enrols a member and records a purchase. Each gives (what, status)."""
    auth = (till["client_id"], till["client_secret"])

    def post(path: str, **kwargs: Any) -> tuple[Any, Any]:
        """The status and JSON body, or the error that stood for an answer."""
        try:
            answer = requests.post(f"{base}{path}", timeout=CLIENT_TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            return type(exc).__name__, None
        return answer.status_code, answer.json()

    def token(scope: str = "purchases:write") -> tuple[Any, Any]:
        grant = {"grant_type": "client_credentials", "scope": scope}
        return post("/oauth/token", data=grant, auth=auth)

    def purchase() -> list[tuple[str, Any]]:
        status, body = token("members:write purchases:write")
        if status != 200:
            return [("token for a purchase", status)]
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        status, member = post("/api/v1/members", json={}, headers=headers)
        if status != 201:
            return [("enrolment", status)]
        bought = {
            "member": member["card_number"],
            "amount": 1250,
            "currency": "EUR",
            "external_id": f"restart-{attempt}",
        }
        status, _ = post("/api/v1/purchases", json=bought, headers=headers)
        return [("enrolment", 201), ("purchase", status)]

    with ThreadPoolExecutor(max_workers=9) as pool:
        tokens = [pool.submit(token) for _ in range(8)]
        bought = pool.submit(purchase)
        return [("token", t.result()[0]) for t in tokens] + bought.result()


def test_the_embedded_server_restarted_over_one_database_answers_every_first_request(
    tmp_path: Path,
) -> None:
    """Issue 9, point 18: a second `make run` over an existing SQLite database left token
    requests failing with `database is locked` for minutes. Here it is restarted three times
    over one demo database, with Stripe configured but never answering, and everything users
    ask at once right after each start succeeds."""
    environ = _environ(tmp_path)
    with _stripe_that_never_answers() as stripe:
        port = stripe.getsockname()[1]
        environ.update(
            STRIPE_API_KEY="sk_test_unanswered", STRIPE_API_BASE=f"http://127.0.0.1:{port}"
        )
        _run(environ, "db", "upgrade")
        credentials = tmp_path / "credentials.json"
        _run(environ, "demo", "--members", "30", "--days", "40", "--credentials", str(credentials))
        till = json.loads(credentials.read_text())["merchant_client"]
        log = tmp_path / "serve.log"

        for attempt in range(3):
            with _serving(environ, log, workers=2) as (base, master):
                answers = _first_requests(base, till, attempt)
                held = _database_files_open(master)
            expected = [("token", 200)] * 8 + [("enrolment", 201), ("purchase", 201)]
            assert answers == expected, f"start {attempt + 1}:\n{log.read_text()[-5000:]}"
            # gunicorn forks a worker whenever one dies: its master must hold no connection.
            assert held == [], f"start {attempt + 1}: gunicorn's master holds {held}"
        # The jobs still run in the server: its payments job asked Stripe for the demo's
        # merchants' accounts or customers.
        assert _first_call(stripe).startswith("POST /v1/")


def _database_files_open(pid: int) -> list[str]:
    return [
        target
        for fd in Path(f"/proc/{pid}/fd").iterdir()
        if "coalition.db" in (target := os.readlink(fd))
    ]


def _payments(database: Path) -> list[tuple[str, str | None]]:
    with closing(sqlite3.connect(database)) as connection:
        return connection.execute("SELECT status, last_error FROM payment_instructions").fetchall()


def test_without_a_stripe_key_payments_wait_saying_why_and_nothing_is_sent(
    tmp_path: Path,
) -> None:
    """Issue 9, point 19: the first run, without a Stripe key, spent a quarter of its log and
    `coalition statements` 20 s on Stripe retries. Now nothing is sent: every payment waits
    as `created`, with the reason, and `coalition serve` says so in one line at start-up."""
    environ = {k: v for k, v in _environ(tmp_path).items() if k != "STRIPE_API_KEY"}
    environ["LOG_LEVEL"] = "INFO"  # where Stripe's own retries were logged
    last_month = (datetime.now(UTC).replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    stripe = StripeStandIn()
    with stripe.running():
        environ["STRIPE_API_BASE"] = stripe.url
        _run(environ, "db", "upgrade")
        _run(environ, "demo", "--members", "20", "--days", "40", "--credentials", "/dev/null")
        stated = subprocess.run(
            [COALITION, "statements", "--month", last_month],
            env=environ,
            capture_output=True,
            text=True,
            timeout=300,
        )
        log = tmp_path / "serve.log"
        with _serving(environ, log, workers=2):
            waiting = []
            for _attempt in range(START_ATTEMPTS):  # until the start-up payments job has run
                waiting = _payments(tmp_path / "coalition.db")
                if waiting and all(error for _, error in waiting):
                    break
                time.sleep(0.2)

    assert stated.returncode == 0, stated.stderr
    assert stripe.calls == []
    assert waiting and {status for status, _ in waiting} == {"created"}
    assert {error for _, error in waiting} == {"Stripe is not configured: set STRIPE_API_KEY"}
    said = [line for line in log.read_text().splitlines() if "STRIPE_API_KEY" in line]
    assert len(said) == 1 and "not configured" in said[0]
    for output in (stated.stderr, log.read_text()):
        assert "retry" not in output.lower() and '"logger": "stripe"' not in output


def test_an_oversized_url_or_header_gets_a_problem_not_gunicorns_html_page(
    tmp_path: Path,
) -> None:
    """Issue 9, point 15: gunicorn answered over-long URLs (414) and header fields (431)
    itself, in HTML, before the app saw them. Its limits are now above the app's own, and the
    app answers within them with a problem. (Beyond gunicorn's hard limits, a request line of
    over 8190 bytes among them, gunicorn still answers: docs/api.md.)"""
    environ = _environ(tmp_path)
    _run(environ, "db", "upgrade")
    with _serving(environ, tmp_path / "serve.log", workers=1) as (base, _master):
        too_long = requests.get(f"{base}/api/v1/members/{'9' * 6000}", timeout=CLIENT_TIMEOUT)
        long_enough = requests.get(
            f"{base}/api/v1/transactions?member={'9' * 4000}", timeout=CLIENT_TIMEOUT
        )
        too_large = requests.get(
            f"{base}/api/v1/transactions", headers={"X-Note": "n" * 12000}, timeout=CLIENT_TIMEOUT
        )
        too_many = requests.get(
            f"{base}/api/v1/transactions",
            headers={f"X-Note-{n}": "n" for n in range(150)},
            timeout=CLIENT_TIMEOUT,
        )

    answers = {
        name: (r.status_code, r.headers["Content-Type"], _problem_code(r))
        for name, r in (("url", too_long), ("header", too_large), ("headers", too_many))
    }
    assert answers == {
        "url": (414, "application/problem+json", "uri_too_long"),
        "header": (431, "application/problem+json", "header_fields_too_large"),
        "headers": (431, "application/problem+json", "header_fields_too_large"),
    }
    # Under the app's bound a long URL is an ordinary request: here, no token.
    assert long_enough.status_code == 401


def _problem_code(response: requests.Response) -> str | None:
    if response.headers["Content-Type"] != "application/problem+json":
        return None
    return response.json().get("code")
