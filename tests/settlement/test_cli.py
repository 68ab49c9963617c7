"""`coalition settle` and `coalition statements` as an operator types them: a day or month they
cannot take is a one-line usage error (exit 2) that changes nothing, long work shows progress on
stderr, and the result is a summary a person reads, or JSON with `--json`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coalition import clock
from settlement.models import SettlementRun, Statement
from tests import factories as f
from tests.stripe_standin import StripeStandIn, stripe_for

NOW = datetime(2026, 3, 10, 9, tzinfo=UTC)  # 10 March in Berlin: February has ended


@pytest.fixture
def stopped_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    return NOW


@pytest.fixture
def stripe(app: Flask, session: Session) -> Iterator[StripeStandIn]:
    with stripe_for(app) as stand_in:
        yield stand_in


def written(session: Session) -> tuple[int, int]:
    return (
        session.execute(select(func.count()).select_from(SettlementRun)).scalar_one(),
        session.execute(select(func.count()).select_from(Statement)).scalar_one(),
    )


def february(session: Session) -> dict[str, str]:
    """A member earns 300 points at the bakery and spends 200 at Café Aurora."""
    bakery, aurora = f.merchant(session, "Bakery"), f.merchant(session, "Café Aurora")
    member = f.member(session)
    f.purchase(session, member, bakery, 300, now=datetime(2026, 2, 10, 9, tzinfo=UTC))
    f.redeem(session, member, aurora, 200, now=datetime(2026, 2, 11, 9, tzinfo=UTC))
    return {"bakery": "Bakery", "aurora": "Café Aurora"}


def refused_as_usage(result: Result, option: str, why: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert f"Invalid value for '{option}'" in error and why in error, error


@pytest.mark.parametrize(
    ("day", "why"),
    [
        ("2026-03-11", "2026-03-11 has not begun"),
        ("2099-01-01", "2099-01-01 has not begun"),
        ("1900-01-01", "before the coalition's first terms"),
        ("0001-01-01", "before the coalition's first terms"),
    ],
)
def test_settle_refuses_a_day_not_begun_or_before_the_first_terms(
    runner: FlaskCliRunner, session: Session, stopped_clock: datetime, day: str, why: str
) -> None:
    before = written(session)

    result = runner.invoke(args=["settle", "--date", day])

    refused_as_usage(result, "--date", why)
    assert written(session) == before


@pytest.mark.parametrize(
    ("month", "why"),
    [
        ("2026-13", "month must look like 2026-10"),
        ("0000-01", "month must look like 2026-10"),
        ("1999-01", "before the coalition's first terms"),
        ("2026-03", "2026-03 has not ended"),
        ("2026-04", "2026-04 has not ended"),
    ],
)
def test_statements_refuses_a_month_that_is_none_not_ended_or_before_the_first_terms(
    runner: FlaskCliRunner, session: Session, stopped_clock: datetime, month: str, why: str
) -> None:
    before = written(session)

    result = runner.invoke(args=["statements", "--month", month])

    refused_as_usage(result, "--month", why)
    assert written(session) == before  # not one day of 1999 settled on the way


def test_statements_shows_progress_and_says_who_pays_whom(
    runner: FlaskCliRunner, session: Session, stopped_clock: datetime, stripe: StripeStandIn
) -> None:
    february(session)

    result = runner.invoke(args=["statements", "--month", "2026-02"])

    assert result.exit_code == 0, result.output
    assert "Settling 28 days of 2026-02" in result.stderr
    out = result.stdout.splitlines()
    assert out[0] == "2026-02: 28 days settled, 2 statements."
    assert any("Bakery pays the coalition EUR 3.75." in line for line in out)
    assert any("The coalition pays Café Aurora EUR 2.00." in line for line in out)
    assert any("transfer succeeded" in line for line in out)
    assert out[-1] == "Payments: 1 submitted, 1 succeeded."
    assert len(result.stdout) < 1000  # a summary, not every day of every statement


def test_statements_json_is_for_machines(
    runner: FlaskCliRunner, session: Session, stopped_clock: datetime, stripe: StripeStandIn
) -> None:
    february(session)

    result = runner.invoke(args=["statements", "--month", "2026-02", "--json"])

    assert result.exit_code == 0, result.output
    body: dict[str, Any] = json.loads(result.stdout)
    assert body["month"] == "2026-02" and len(body["days_settled"]) == 28
    closings = {s["merchant"]["name"]: s["closing"] for s in body["statements"]}
    assert closings == {
        "Bakery": {"amount": 375, "currency": "EUR"},
        "Café Aurora": {"amount": -200, "currency": "EUR"},
    }
    assert body["payments"] == {"submitted": 1, "succeeded": 1}


def test_settle_says_what_the_day_came_to_or_prints_json(
    runner: FlaskCliRunner, session: Session, stopped_clock: datetime
) -> None:
    february(session)

    human = runner.invoke(args=["settle", "--date", "2026-02-11"])
    machine = runner.invoke(args=["settle", "--date", "2026-02-11", "--json"])
    today = runner.invoke(args=["settle", "--date", "2026-03-10"])

    assert human.exit_code == machine.exit_code == today.exit_code == 0, human.output
    run = json.loads(machine.stdout)
    assert (run["kind"], run["status"], run["business_date"]) == (
        "final",
        "succeeded",
        "2026-02-11",
    )
    assert human.stdout.splitlines() == [
        f"2026-02-11 is settled for good (final run {run['id']}, succeeded).",
        "1 merchant; points: 0 issued, 200 redeemed, 0 expired, 0 clawed back, 0 reversed.",
        "The merchants' nets add up to -2.00 EUR (positive: merchants pay the operator).",
    ]
    assert today.stdout.startswith("2026-03-10 is reported provisionally (run run_")


def test_statements_without_a_stripe_key_says_why_the_payments_wait(
    runner: FlaskCliRunner, session: Session, stopped_clock: datetime
) -> None:
    february(session)

    result = runner.invoke(args=["statements", "--month", "2026-02"])

    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    assert out[-2:] == [
        "Payments: 2 waiting.",
        "  They wait: Stripe is not configured: set STRIPE_API_KEY.",
    ]
    assert "Stripe" not in result.stderr  # nothing claims to be sent there
