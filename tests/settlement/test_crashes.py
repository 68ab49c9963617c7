"""QUALITY B1 and B4: `kill -9` of the process at each step of settling a day, stating its month
and paying the statements, then a rerun: the same positions and statements, and exactly one
payment instruction and one Stripe transfer per merchant and month; nights missed while the
scheduler was down are caught up by its next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from coalition.extensions import db
from coalition.jobs import run_daily_jobs
from settlement import runs
from settlement.models import PaymentInstruction, SettlementPosition, SettlementRun, Statement
from tests import factories as f
from tests.stripe_standin import StripeStandIn

COALITION = str(Path(sys.executable).with_name("coalition"))
FEBRUARY = [date(2026, 2, 1) + timedelta(days=n) for n in range(28)]


def _coalition(app: Flask, *args: str, kill_at: str | None = None, stripe: str = "") -> int:
    environ = {
        **os.environ,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"].replace("+psycopg", ""),
        "COALITION_ENV": "testing",
        "COALITION_TIMEZONE": "Europe/Berlin",
        "SECRET_KEY": "test-secret-key",
        "LOG_LEVEL": "WARNING",
        "STRIPE_API_BASE": stripe or "http://127.0.0.1:9",
        "STRIPE_API_KEY": "sk_test_standin",
    }
    environ.pop("COALITION_KILL_AT", None)
    if kill_at:
        environ["COALITION_KILL_AT"] = kill_at
    done = subprocess.run([COALITION, *args], env=environ, capture_output=True, timeout=120)
    if done.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(done.stderr.decode()[-3000:])
    return done.returncode


def _february(app: Flask) -> tuple[int, int]:
    """Two shops; a member earns at the first and spends at the second: the first owes."""
    with app.app_context():
        issuer, redeemer, alice = (
            f.merchant(db.session),
            f.merchant(db.session),
            f.member(db.session),
        )
        f.purchase(db.session, alice, issuer, 300, now=datetime(2026, 2, 10, 9, tzinfo=UTC))
        f.redeem(db.session, alice, redeemer, 200, now=datetime(2026, 2, 11, 9, tzinfo=UTC))
        db.session.commit()
    return issuer, redeemer


def _state(app: Flask) -> dict[str, object]:
    with app.app_context():
        session = db.session()
        positions = session.execute(
            select(
                SettlementRun.business_date, SettlementPosition.merchant_id, SettlementPosition.net
            )
            .join(SettlementRun, SettlementRun.id == SettlementPosition.run_id)
            .order_by(SettlementRun.business_date, SettlementPosition.merchant_id)
        ).all()
        statements = session.execute(
            select(Statement.merchant_id, Statement.month, Statement.closing).order_by(
                Statement.merchant_id
            )
        ).all()
        instructions = session.execute(
            select(
                PaymentInstruction.merchant_id,
                PaymentInstruction.kind,
                PaymentInstruction.amount_minor,
                PaymentInstruction.status,
            ).order_by(PaymentInstruction.merchant_id)
        ).all()
        finals = session.execute(
            select(func.count()).select_from(SettlementRun).where(SettlementRun.kind == "final")
        ).scalar_one()
        db.session.remove()
    return {
        "positions": [tuple(r) for r in positions],
        "statements": [tuple(r) for r in statements],
        "instructions": [tuple(r) for r in instructions],
        "final_runs": finals,
    }


@pytest.mark.parametrize("step", ["requested", "gate", "totals", "positions", "committed"])
def test_a_settlement_killed_at_any_step_and_rerun_settles_the_day_once(committed, step):
    _, redeemer = _february(committed)

    killed = _coalition(committed, "settle", "--date", "2026-02-11", kill_at=f"settle:{step}")
    rerun = _coalition(committed, "settle", "--date", "2026-02-11")

    assert (killed, rerun) == (-signal.SIGKILL, 0)
    state = _state(committed)
    # 200 of the issuer's points spent at the redeemer: it is paid 2.00 (prefunded).
    assert state["positions"] == [(date(2026, 2, 11), redeemer, "-2.00")]
    assert state["final_runs"] == 1


@pytest.mark.parametrize(
    "point",
    ["settle:positions", "statements:stated", "payments:submitted", "payments:called", None],
)
def test_a_month_killed_anywhere_between_settling_and_paying_pays_each_merchant_once(
    committed, point
):
    issuer, redeemer = _february(committed)
    stand_in = StripeStandIn()
    with stand_in.running():
        first = _coalition(
            committed, "statements", "--month", "2026-02", kill_at=point, stripe=stand_in.url
        )
        rerun = _coalition(committed, "statements", "--month", "2026-02", stripe=stand_in.url)
        transfers = stand_in.all("transfer")
        invoices = stand_in.all("invoice")

    assert first == (-signal.SIGKILL if point else 0) and rerun == 0
    state = _state(committed)
    assert state["final_runs"] == 28
    assert state["statements"] == [(issuer, "2026-02", "3.75"), (redeemer, "2026-02", "-2.00")]
    assert state["instructions"] == [
        (issuer, "invoice", 375, "submitted"),  # sent; Stripe's events will say when it is paid
        (redeemer, "transfer", 200, "succeeded"),
    ]
    assert [(t["destination"], t["amount"]) for t in transfers] == [
        (transfers[0]["destination"], 200)
    ]
    assert [i["amount_due"] for i in invoices] == [375]


def test_nights_missed_while_the_scheduler_was_down_are_all_settled_by_its_next_run(session):
    shop, alice = f.merchant(session), f.member(session)
    for day in range(5):
        f.purchase(session, alice, shop, 10, now=datetime(2026, 2, 10 + day, 9, tzinfo=UTC))
    session.commit()  # as the tills did, before the jobs ran

    run_daily_jobs(now=datetime(2026, 2, 11, 1, tzinfo=UTC).isoformat())  # settles the 10th
    done = run_daily_jobs(now=datetime(2026, 2, 15, 1, tzinfo=UTC).isoformat())  # 3 nights later

    assert done["settle"] == ["2026-02-11", "2026-02-12", "2026-02-13", "2026-02-14"]
    assert runs.unsettled_days(session, date(2026, 2, 10), date(2026, 2, 14)) == []
    issued = session.execute(select(func.sum(SettlementPosition.issued))).scalar_one()
    assert issued == 50
