"""The `coalition` command as an operator meets it (issue 9, point 22): it names its own
version, offers the operator's commands and not Flask's development ones, and a typo gets a
one-line hint rather than a trace."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

COALITION = str(Path(sys.executable).with_name("coalition"))
FLASK = str(Path(sys.executable).with_name("flask"))


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    environ.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'coalition.db'}",
        COALITION_ENV="development",
        SECRET_KEY="cli-test-secret",
        LOG_LEVEL="WARNING",
    )
    return environ


def _coalition(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COALITION, *args], env=environ, capture_output=True, text=True, timeout=120
    )


def _commands(help_text: str) -> set[str]:
    listed = help_text.split("Commands:", 1)[1].splitlines()
    return {line.split()[0] for line in listed if line.startswith("  ") and line.split()}


def test_coalition_version_is_coalitions_own(environ: dict[str, str]) -> None:
    answer = _coalition(environ, "--version")

    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == f"coalition {version('coalition')}"


def test_the_operators_cli_offers_no_development_server_shell_or_migration_authoring(
    environ: dict[str, str],
) -> None:
    top = _commands(_coalition(environ, "--help").stdout)
    database = _coalition(environ, "db", "--help")

    assert {"serve", "worker", "db", "demo", "settle", "statements", "verify-ledger"} <= top
    assert {"run", "shell"} & top == set()
    assert _commands(database.stdout) == {"upgrade", "current"}
    for hidden in (["run"], ["shell"], ["db", "revision"], ["db", "migrate"], ["db", "init"]):
        refused = _coalition(environ, *hidden)
        assert refused.returncode == 2 and "No such command" in refused.stderr, hidden


def test_developers_author_migrations_with_flasks_own_cli(environ: dict[str, str]) -> None:
    answer = subprocess.run(
        [FLASK, "--app", "coalition", "db", "revision", "--help"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert answer.returncode == 0, answer.stderr
    assert "--autogenerate" in answer.stdout


def test_a_mistyped_option_gets_a_hint_not_a_trace(environ: dict[str, str]) -> None:
    answer = _coalition(environ, "serve", "--prot", "8105")

    assert answer.returncode == 2
    assert "No such option '--prot'" in answer.stderr and "'--port'" in answer.stderr
    assert "Traceback" not in answer.stderr


def test_upgrading_a_postgresql_database_not_yet_created_says_to_create_it(
    environ: dict[str, str], postgres_url: str
) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + "/coalition_never_created"
    answer = _coalition({**environ, "DATABASE_URL": missing}, "db", "upgrade")

    assert answer.returncode == 1
    assert "Traceback" not in answer.stderr
    assert 'database "coalition_never_created" does not exist' in answer.stderr
    assert "createdb" in answer.stderr
