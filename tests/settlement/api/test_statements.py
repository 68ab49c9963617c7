"""The operator states months over the API and reads every statement; a merchant reads its own
statements as JSON, CSV and PDF; a month that is none, or before the first terms, is refused
wherever a month is asked for."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from settlement import runs
from tests import factories as f
from tests.settlement.api.test_runs import refused, written
from tests.settlement.test_appendix import the_month, use_model
from tests.settlement.test_renditions import pdf_text

MARCH = [date(2026, 3, 1) + timedelta(days=n) for n in range(31)]


def _settle_all(session: Session, days: list[date]) -> None:
    for day in days:
        runs.settle(session, day, datetime(2026, 11, 1, tzinfo=UTC))


def test_a_month_with_unsettled_days_is_not_stated(client: FlaskClient, session: Session):
    _settle_all(session, MARCH[:-1])
    answer = client.post(
        "/api/v1/ops/statements", json={"month": "2026-03"}, headers=f.operator_headers(session)
    )
    assert answer.status_code == 409 and answer.json["code"] == "days_not_settled"
    assert answer.json["days"] == ["2026-03-31"]


def test_the_appendix_statements_pay_a_004_and_b_078(client: FlaskClient, session: Session):
    use_model(session, "on_redemption")
    the_month(session)
    _settle_all(session, [date(2026, 10, d) for d in range(4, 32)])
    ops = f.operator_headers(session)

    answer = client.post("/api/v1/ops/statements", json={"month": "2026-10"}, headers=ops)
    again = client.post("/api/v1/ops/statements", json={"month": "2026-10"}, headers=ops)

    assert answer.status_code == 201
    closing = {s["merchant"]["name"]: s["closing"] for s in answer.json["data"]}
    assert closing == {  # the operator pays both
        "A": {"amount": -4, "currency": "EUR"},
        "B": {"amount": -78, "currency": "EUR"},
    }
    assert [s["id"] for s in again.json["data"]] == [s["id"] for s in answer.json["data"]]
    for statement in answer.json["data"]:
        lines = sum(Decimal(line["amount"]) for line in statement["lines"])
        assert lines == Decimal(statement["exact_net"])
        net = Decimal(statement["exact_net"]) + Decimal(statement["rounding"])
        assert net * 100 == statement["net"]["amount"]
        assert statement["payment"]["kind"] == "transfer"
        assert statement["payment"]["amount"] == {
            "amount": -statement["closing"]["amount"],
            "currency": "EUR",
        }
    b = next(s for s in answer.json["data"] if s["merchant"]["name"] == "B")
    assert sum(d["redeemed"] for d in b["days"]) == 170 and len(b["days"]) == 31
    assert b["summary"] == "The coalition pays B EUR 0.78."


def test_a_statement_rounds_its_net_once_half_even_and_shows_it(
    client: FlaskClient, session: Session
):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 1)  # 1 point x 0.0125 = 0.0125
    f.purchase(session, alice, shop, 1, now=f.T0 + timedelta(days=1))
    f.purchase(session, alice, shop, 1, now=f.T0 + timedelta(days=2))  # 0.0375 in all
    _settle_all(session, MARCH)

    answer = client.post(
        "/api/v1/ops/statements", json={"month": "2026-03"}, headers=f.operator_headers(session)
    )

    [statement] = answer.json["data"]
    assert (statement["exact_net"], statement["rounding"]) == ("0.0375", "0.0025")
    assert statement["net"] == statement["closing"] == {"amount": 4, "currency": "EUR"}
    assert statement["opening"] == {"amount": 0, "currency": "EUR"}
    assert statement["summary"] == "Shop pays the coalition EUR 0.04."
    assert statement["payment"]["kind"] == "invoice"
    assert statement["payment"]["amount"] == {"amount": 4, "currency": "EUR"}


def test_a_merchant_reads_its_own_statements_as_json_csv_and_pdf(
    client: FlaskClient, session: Session
):
    mine, theirs = f.merchant(session, "Mine"), f.merchant(session, "Theirs")
    own = f.statement(session, mine).public_id
    other = f.statement(session, theirs).public_id
    till = f.merchant_headers(session, mine, "statements:read")

    listed = client.get("/api/v1/statements", headers=till).json
    as_json = client.get(f"/api/v1/statements/{own}", headers=till)
    as_csv = client.get(f"/api/v1/statements/{own}.csv", headers=till)
    as_pdf = client.get(f"/api/v1/statements/{own}.pdf", headers=till)

    assert [s["id"] for s in listed["data"]] == [own]
    assert as_json.json["closing"] == {"amount": -150, "currency": "EUR"}
    assert as_json.json["summary"] == "The coalition pays Mine EUR 1.50."
    rows = list(csv.reader(io.StringIO(as_csv.get_data(as_text=True))))
    assert ["closing", "-1.50"] in rows and as_csv.mimetype == "text/csv"
    assert ["summary", "The coalition pays Mine EUR 1.50."] in rows
    assert as_pdf.mimetype == "application/pdf" and as_pdf.data.startswith(b"%PDF")
    assert "The coalition pays Mine EUR 1.50." in pdf_text(as_pdf.data)
    for url in (f"/api/v1/statements/{other}", f"/api/v1/statements/{other}.pdf"):
        assert client.get(url, headers=till).status_code == 404


@pytest.mark.parametrize("month", ["0000-01", "0001-01", "1999-12", "2026-13", "2026-00"])
def test_a_month_that_is_not_one_or_is_before_the_first_terms_isrefused(
    client: FlaskClient, session: Session, month: str
):
    ops = f.operator_headers(session)
    before = written(session)

    answers = [
        client.post("/api/v1/ops/statements", json={"month": month}, headers=ops),
        client.get(f"/api/v1/ops/statements?month={month}", headers=ops),
        client.get(f"/api/v1/ops/reports/flows?month={month}", headers=ops),
        client.get(f"/api/v1/ops/payments?month={month}", headers=ops),
        client.get(
            f"/api/v1/statements?month={month}",
            headers=f.merchant_headers(session, f.merchant(session), "statements:read"),
        ),
    ]

    for answer in answers:
        refused(answer, "month")
    assert written(session) == before
