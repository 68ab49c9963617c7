"""The README's way to run the platform, end to end: migrate a fresh SQLite database, start
`coalition serve`, and the liveness probe answers over real HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import pytest

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
