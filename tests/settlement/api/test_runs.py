"""The operator settles days over the API (SPEC 3.5): a closed day once, and only days from the
coalition's first terms to today; a day it cannot have is refused as the field's problem, with
nothing written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from settlement import runs
from settlement.models import Statement
from tests import factories as f


def test_a_closed_day_is_settled_over_the_api_once(client: FlaskClient, session: Session):
    shop, alice = f.merchant(session, "Café Nord"), f.member(session)
    f.purchase(session, alice, shop, 80, welcome=100)
    ops = f.operator_headers(session)

    first = client.post(
        "/api/v1/ops/settlement-runs", json={"business_date": "2026-03-02"}, headers=ops
    )
    again = client.post(
        "/api/v1/ops/settlement-runs", json={"business_date": "2026-03-02"}, headers=ops
    )
    run = client.get(f"/api/v1/ops/settlement-runs/{first.json['id']}", headers=ops).json

    assert first.status_code == 202 and again.json["id"] == first.json["id"]
    assert (run["kind"], run["status"]) == ("final", "succeeded")
    [position] = run["positions"]
    assert position["merchant"]["id"].startswith("mer_")
    assert position["merchant"]["name"] == "Café Nord"
    assert (position["issued"], position["owed"], position["net"]) == (80, "1.00", "1.00")
    assert run["totals"]["points"]["operator_issued"] == 100
    assert run["totals"]["operator"]["result"] == "1.00"
    listed = client.get("/api/v1/ops/settlement-runs?business_date=2026-03-02", headers=ops).json
    assert [r["id"] for r in listed["data"]] == [first.json["id"]]


def test_a_day_not_yet_begun_isrefused(client: FlaskClient, session: Session):
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    answer = client.post(
        "/api/v1/ops/settlement-runs",
        json={"business_date": tomorrow},
        headers=f.operator_headers(session),
    )
    assert answer.status_code == 422 and answer.json["code"] == "validation_error"


# Days the coalition cannot have: refused as the field's problem, nothing written.


def written(session: Session) -> tuple[int, int]:
    return (
        session.execute(select(func.count()).select_from(runs.runs)).scalar_one(),
        session.execute(select(func.count()).select_from(Statement)).scalar_one(),
    )


def refused(answer: Any, field: str) -> None:
    assert answer.status_code == 422, answer.get_json()
    assert answer.mimetype == "application/problem+json"
    body = answer.get_json()
    assert body["code"] == "validation_error" and field in body["errors"], body


@pytest.mark.parametrize(
    "day",
    ["0000-01-01", "0001-01-01", "1900-01-01", "1999-12-31", "2999-01-01", "9999-12-31"],
)
def test_a_settlement_run_for_a_day_before_the_first_terms_or_in_the_future_isrefused(
    client: FlaskClient, session: Session, day: str
):
    ops = f.operator_headers(session)
    before = written(session)

    posted = client.post("/api/v1/ops/settlement-runs", json={"business_date": day}, headers=ops)
    listed = client.get(f"/api/v1/ops/settlement-runs?business_date={day}", headers=ops)

    refused(posted, "business_date")
    if day < "2000-01-01":
        refused(listed, "business_date")
    else:
        assert listed.status_code == 200 and listed.json["data"] == []
    assert written(session) == before


def test_the_first_day_of_the_first_terms_can_be_settled(client: FlaskClient, session: Session):
    answer = client.post(
        "/api/v1/ops/settlement-runs",
        json={"business_date": "2000-01-01"},
        headers=f.operator_headers(session),
    )
    assert answer.status_code == 202 and answer.json["kind"] == "final"
