"""`coalition demo`: a newcomer's first run shows a coalition that has been trading for weeks,
with credentials to try the API, and running it again changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coalition import clock
from coalition.database import table
from coalition.demo import fill
from coalition.ledger.models import Transaction
from coalition.oauth.tokens import authenticate, issue_token
from merchants.models import Merchant


@pytest.mark.both_backends
def test_the_demo_trades_for_weeks_and_leaves_a_sound_ledger(session: Session) -> None:
    made = fill(session, members=30, days=10, seed=1, now=clock.utcnow())

    totals = made["totals"]
    assert totals["merchants"] == 8 and totals["members"] == 30
    assert totals["purchases"] > 0 and totals["redemptions"] > 0
    by_type = dict(
        session.execute(
            select(table(Transaction).c.type, func.count()).group_by(table(Transaction).c.type)
        ).all()
    )
    assert by_type["earn"] == totals["purchases"]
    assert by_type["redeem"] == totals["redemptions"]
    # The session fixture checks every ledger invariant after the test.


def test_the_demo_credentials_work_on_the_api(app: Flask, session: Session) -> None:
    made = fill(session, members=5, days=1, seed=2, now=clock.utcnow())
    till = made["credentials"]["merchant_client"]["client_id"]
    token = issue_token(session, client_id=till, scope="transactions:read", now=clock.utcnow())

    response = app.test_client().get(
        "/api/v1/transactions", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert authenticate(session, token, clock.utcnow()) is not None


def test_the_demo_command_leaves_a_database_with_merchants_alone(
    app: Flask, session: Session
) -> None:
    fill(session, members=3, days=1, seed=3, now=clock.utcnow())
    before = session.execute(select(func.count()).select_from(table(Merchant))).scalar()

    result = app.test_cli_runner().invoke(args=["demo"])

    assert result.exit_code == 0, result.output
    assert "left as it is" in result.output
    assert session.execute(select(func.count()).select_from(table(Merchant))).scalar() == before


def test_the_demo_command_prints_credentials_it_keeps_privately(
    app: Flask, session: Session, tmp_path: Path
) -> None:
    kept = tmp_path / "credentials.json"
    result = app.test_cli_runner().invoke(
        args=["demo", "--members", "4", "--days", "1", "--credentials", str(kept)]
    )

    assert result.exit_code == 0, result.output
    printed = json.loads(result.output[result.output.index("{\n") : result.output.rindex("}") + 1])
    assert printed["operator_client"]["client_secret"].startswith("cs_")
    assert printed["member_sign_in"]["email"] == "anna@demo.example"
    assert json.loads(kept.read_text()) == printed
    assert kept.stat().st_mode & 0o777 == 0o600
