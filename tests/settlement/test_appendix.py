"""SPEC's appendix, a worked month, settled day by day under both funding models: every owed,
receivable and net amount of its tables, the operator's cash and its decomposition, exactly."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import economics
from coalition.ledger import operations
from settlement import runs
from settlement.models import SettlementPosition
from tests import factories

DAY = {n: date(2026, 10, n) for n in (1, 2, 3)}


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 10, day, hour, tzinfo=UTC)


def use_model(session: Session, model: str) -> None:
    terms = economics.DEFAULT_TERMS.to_json() | {"funding_model": model}
    economics.set_version(
        session,
        effective_from=date(2026, 9, 1),
        settings=terms,
        merchant_id=None,
        actor_id="test",
        now=at(1),
    )


def the_month(session: Session) -> dict[str, int]:
    """The appendix's events, each settled at the end of its day."""
    a, b = factories.merchant(session, "A"), factories.merchant(session, "B")
    m1, m2 = factories.member(session), factories.member(session)
    # Day 1: M1 buys 80 EUR at A (1 point a euro), M2 40 EUR at B (2 a euro); both welcomed.
    bought = factories.purchase(session, m1, a, 80, welcome=100, amount_minor=8000, now=at(1))
    factories.purchase(session, m2, b, 80, welcome=100, amount_minor=4000, now=at(1))
    runs.settle(session, DAY[1], at(2, 1))
    # Day 2: M1 redeems 170 at B, M2 50 at A; A refunds 40 EUR of M1's purchase.
    factories.redeem(session, m1, b, 170, now=at(2, 11))
    factories.redeem(session, m2, a, 50, now=at(2, 12))
    refund = operations.refund(
        session,
        purchase_id=bought["transaction"]["id"],
        merchant_id=a,
        amount_minor=4000,
        actor=factories.TILL,
        now=at(2, 13),
    )
    assert refund["transaction"]["points_clawed_back"] == 40
    assert refund["member"]["balance"] == -30
    runs.settle(session, DAY[2], at(3, 1))
    # Day 3: M1 buys 20 EUR at B: 40 points, of which the debt takes 30.
    factories.purchase(session, m1, b, 40, amount_minor=2000, now=at(3, 11))
    runs.settle(session, DAY[3], at(4, 1))
    return {"A": a, "B": b}


def positions(session: Session, day: date, merchants: dict[str, int]) -> dict[str, Any]:
    run = session.execute(
        select(runs.runs).where(runs.runs.c.business_date == day, runs.runs.c.kind == "final")
    ).one()
    rows = session.execute(
        select(SettlementPosition).where(SettlementPosition.run_id == run.id)
    ).scalars()
    name = {v: k for k, v in merchants.items()}
    found = {name[p.merchant_id]: (p.owed, p.receivable, p.net) for p in rows}
    return {"positions": found, "totals": run.totals}


PREFUNDED = {
    1: {"A": ("1.00", "0.00", "1.00"), "B": ("1.00", "0.00", "1.00"), "cash": "2.00"},
    2: {"A": ("0.00", "1.00", "-1.00"), "B": ("0.00", "1.70", "-1.70"), "cash": "-2.70"},
    3: {"B": ("0.50", "0.00", "0.50"), "cash": "0.50"},
}
ON_REDEMPTION = {
    1: {"A": ("0.00", "0.00", "0.00"), "B": ("0.00", "0.00", "0.00"), "cash": "0.00"},
    2: {"A": ("0.92", "0.96", "-0.04"), "B": ("0.575", "1.70", "-1.125"), "cash": "-1.165"},
    3: {"B": ("0.345", "0.00", "0.345"), "cash": "0.345"},
}


# The operator's month "computed from the ledger", term by term, as the appendix states it.
DECOMPOSITION = {
    "prefunded": {
        "issue_revenue": "2.50",
        "reimbursements": "2.20",
        "clawback_credits": "0.50",
        "result": "-0.20",
    },
    "on_redemption": {
        "fees": "0.24",
        "debt_recovered": "0.30",
        "operator_funded_redeemed": "0.90",
        "clawback_credits": "0.46",
        "result": "-0.82",
    },
}


@pytest.mark.parametrize(
    ("model", "expected"), [("prefunded", PREFUNDED), ("on_redemption", ON_REDEMPTION)]
)
def test_the_appendix_month_settles_to_the_cent(
    session: Session, model: str, expected: dict[int, dict[str, Any]]
) -> None:
    use_model(session, model)
    merchants = the_month(session)
    cash = Decimal(0)
    month: dict[str, Decimal] = {}
    for day in DAY.values():
        for term, amount in positions(session, day, merchants)["totals"]["operator"].items():
            month[term] = month.get(term, Decimal(0)) + Decimal(amount)
    assert month == {k: Decimal(v) for k, v in DECOMPOSITION[model].items()}
    for n, day in DAY.items():
        found = positions(session, day, merchants)
        want = {k: v for k, v in expected.get(n, {"cash": "0.00"}).items() if k != "cash"}
        assert found["positions"] == want, f"day {n}"
        assert found["totals"]["nets"] == expected.get(n, {"cash": "0.00"})["cash"]
        assert found["totals"]["operator"]["result"] == found["totals"]["nets"]
        cash += Decimal(found["totals"]["nets"])
    assert cash == Decimal("-0.20") if model == "prefunded" else cash == Decimal("-0.82")
