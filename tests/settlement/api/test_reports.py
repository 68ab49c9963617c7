"""The operator's reports over the API: the flow report and the liability of the appendix's month
add up to what the ledger says (SPEC appendix)."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from merchants.models import Merchant
from tests import factories as f
from tests.settlement.test_appendix import the_month, use_model


def test_the_flow_report_and_liability_match_the_appendix(client: FlaskClient, session: Session):
    use_model(session, "prefunded")
    merchants = the_month(session)
    ops = f.operator_headers(session)
    public = {
        row.id: row.public_id
        for row in session.execute(select(Merchant.id, Merchant.public_id)).all()
    }
    a, b = public[merchants["A"]], public[merchants["B"]]

    flows = client.get("/api/v1/ops/reports/flows?month=2026-10", headers=ops).json
    liability = client.get("/api/v1/ops/liability", headers=ops).json

    cells = {
        (c["issuer"]["id"], c["redeemer"]["id"]): (c["points"], c["amount"]) for c in flows["flows"]
    }
    assert cells == {
        (a, b): (80, "0.80"),
        ("operator", b): (90, "0.90"),
        (b, a): (50, "0.50"),
        (b, "operator"): (30, "0.30"),  # M1's debt repaid from B's points
    }
    assert flows["currency"] == "EUR"
    named = {c["issuer"]["id"]: c["issuer"]["name"] for c in flows["flows"]}
    assert named == {a: "A", b: "B", "operator": "Coalition operator"}
    trade = {m["id"]: m["balance_of_trade"] for m in flows["merchants"]}
    assert trade == {a: 50 - 80, b: 80 + 90 - 50 - 30}
    # SPEC appendix: 140 points outstanding at month end (M1 10, M2 130), a liability of 1.40.
    assert liability["outstanding_points"] == 140
    assert liability["value"] == {"amount": 140, "currency": "EUR"}
    assert liability["debt_points"] == 0 and liability["breakage"]["points"] == 0
    issuers = {
        i["issuer"]["name"]: (i["issuer"]["id"], i["points"]) for i in liability["by_issuer"]
    }
    assert issuers == {"B": (b, 10 + 30), "Coalition operator": ("operator", 100)}
