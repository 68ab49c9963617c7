# ruff: noqa: E501 (the worked tables are wider than a line)
"""A worked example with a pending window (SPEC 2, Pending points), under both funding models,
from the till's side like the appendix: settlement counts pending points as issued on the day
the nightly job confirms them, and a refund inside the window cancels them with no money moved.

Terms as in the appendix (`point_value` 0.01, `issue_price` 0.0125, fee 0.15, welcome bonus
100, one tier x1). A earns 1 point a euro with a 2-day pending window; B earns 2 points a euro
with none. Times are UTC; business days are Berlin's (CEST), each settled at its end.

| day | event | lots and balances after it |
| --- | --- | --- |
| 1 | M1 buys 80.00 at A: 80 from A and 100 welcome, both pending until day 3 | L1 (A 80 p), L2 (op 100 p); M1 180, 180 pending |
| 1 | M2 buys 40.00 at B: 80 from B and 100 welcome, spendable | L3 (B 80), L4 (op 100); M2 180 |
| 1 | M2 buys 30.00 at A: 30 from A, pending until day 3 | L5 (A 30 p); M2 210, 30 pending |
| 2 | M1 tries to redeem 50 at B: refused, 0 available | |
| 2 | A refunds 20.00 of M2's 30.00 inside the window: 20 cancelled | L5 (A 30 p, 10 left); M2 190 |
| 2 | M2 redeems 150 at A | L3 80 (B→A), L4 70 (op→A); M2 40, 10 pending |
| 3 | A refunds 20.00 of M1's 80.00 inside the window: 20 cancelled | L1 (A 80 p, 60 left); M1 160 |
| 4 | the night's job confirms L1 (60), L2 (100) and L5 (10) | M1 160, M2 40; nothing pending |
| 4 | M1 redeems 100 at B | L1 60 (A→B), L2 40 (op→B); M1 60 |
| 4 | A refunds another 20.00 of M1's purchase, after the window: 20 clawed | L1 is empty: 20 from L2 (op lot, credited to A); M1 40 |
| 4 | M2 redeems 40 at B | L4 30 (op→B), L5 10 (A→B); M2 0 |

`prefunded` (net = owed - receivable):

| day | A owed | A receivable | A net | B owed | B receivable | B net | operator cash |
| --- | --- | --- | --- | --- | --- | --- | --- |
| 1 | 0 (110 issued, none confirmed) | 0 | 0 | 1.00 (80 x 0.0125) | 0 | 1.00 | 1.00 |
| 2 | 0 | 1.50 (150 x 0.01) | -1.50 | | | | -1.50 |
| 3 | (the cancellation moves nothing) | | | | | | 0 |
| 4 | 0.875 (70 confirmed x 0.0125) | 0.25 (20 clawed x 0.0125) | 0.625 | 0 | 1.40 (140 x 0.01) | -1.40 | -0.775 |
| month | | | -0.875 | | | -0.40 | -1.275 |

From the ledger: issue revenue (80 + 70) x 0.0125 = 1.875, less reimbursements 290 x 0.01 =
2.90, less clawback credits 0.25: -1.275. The 40 points cancelled inside the window are never
charged nor credited.

`on_redemption` (0.0115 = 0.01 x 1.15 per point an issuer owes):

| day | A owed | A receivable | A net | B owed | B receivable | B net | operator cash |
| --- | --- | --- | --- | --- | --- | --- | --- |
| 1 | 0 | 0 | 0 | 0 | 0 | 0 | 0 |
| 2 | 0 | 1.50 (80 B's + 70 op's, x 0.01) | -1.50 | 0.92 (80 x 0.0115) | 0 | 0.92 | -0.58 |
| 3 | | | | | | | 0 |
| 4 | 0.805 ((60 + 10) x 0.0115) | 0.23 (20 paid-for clawed x 0.0115) | 0.575 | 0 | 1.40 | -1.40 | -0.825 |
| month | | | -0.925 | | | -0.48 | -1.405 |

From the ledger: fees (80 + 60 + 10) x 0.0015 = 0.225, less operator-funded points redeemed
140 x 0.01 = 1.40, less clawback credits 0.23: -1.405.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition.errors import InsufficientPoints
from coalition.ledger import reads
from coalition.ledger.pending import confirm_due_lots
from coalition.members.services import create_member
from merchants import purchases
from merchants.services import create_merchant, set_pending_days
from settlement import runs
from settlement.models import SettlementPosition
from tests.ops_helpers import sign_in_as
from tests.settlement.test_appendix import (
    TILL,
    _card,
    at,
    buy,
    lots_of,
    money,
    positions,
    redeem,
    use_model,
)

DAYS = {n: date(2026, 10, n) for n in (1, 2, 3, 4)}
END_OF_DAY_3 = at(3, 22)  # midnight in Berlin (CEST, UTC+2)


def refund(session: Session, merchant_id: int, purchase: str, euros: int, receipt: str, when):
    result = purchases.refund_purchase(
        session,
        merchant_id=merchant_id,
        purchase_id=purchase,
        amount_minor=euros * 100,
        external_id=receipt,
        actor=TILL,
        now=when,
    )
    assert not result.replayed
    return result


def the_days(session: Session) -> dict[str, int]:
    """The example's events through the merchant API's services, each day settled at its end,
    the night's confirmation run on day 4; its lots and balances checked as they happen."""
    a = create_merchant(session, "A", now=at(1, 0), details={"base_rate": "1"})[0]
    b = create_merchant(session, "B", now=at(1, 0), details={"base_rate": "2"})[0]
    assert set_pending_days(session, a, 2, now=at(1, 0)).in_force == 2
    m1, m2 = (create_member(session, now=at(1, 0))[0] for _ in range(2))
    card1, card2 = _card(session, m1), _card(session, m2)

    # Day 1.
    bought = buy(session, a, card1, 80, "A-0001", at(1, 11))
    assert bought["transaction"]["points"] == 180
    buy(session, b, card2, 40, "B-0001", at(1, 12))
    small = buy(session, a, card2, 30, "A-0002", at(1, 13))
    assert lots_of(session, m1) == [(a, 80, 80), ("op", 100, 100)]
    assert reads.balance(session, m1, at(1, 14))["available"] == 0
    assert reads.balance(session, m2, at(1, 14))["pending"] == 30
    runs.settle(session, DAYS[1], at(2, 1))

    # Day 2.
    with pytest.raises(InsufficientPoints):
        redeem(session, b, m1, 50, "B-R-0001", at(2, 10))
    refund(session, a, small["transaction"]["id"], 20, "A-RET-0001", at(2, 11))
    assert redeem(session, a, m2, 150, "A-R-0001", at(2, 12))["member"]["balance"] == 40
    assert lots_of(session, m2) == [(b, 80, 0), ("op", 100, 30), (a, 30, 10)]
    runs.settle(session, DAYS[2], at(3, 1))

    # Day 3.
    refund(session, a, bought["transaction"]["id"], 20, "A-RET-0002", at(3, 11))
    assert lots_of(session, m1) == [(a, 80, 60), ("op", 100, 100)]
    runs.settle(session, DAYS[3], at(4, 1))

    # Day 4: the night's confirmation, then the day.
    assert confirm_due_lots(session, cutoff=END_OF_DAY_3, now=at(4, 2)) == 2
    assert [reads.balance(session, m, at(4, 2))["pending"] for m in (m1, m2)] == [0, 0]
    assert redeem(session, b, m1, 100, "B-R-0002", at(4, 10))["member"]["balance"] == 60
    after = refund(session, a, bought["transaction"]["id"], 20, "A-RET-0003", at(4, 11))
    assert after.points_clawed_back == 20
    assert lots_of(session, m1) == [(a, 80, 0), ("op", 100, 40)]
    assert redeem(session, b, m2, 40, "B-R-0003", at(4, 12))["member"]["balance"] == 0
    runs.settle(session, DAYS[4], at(5, 1))
    return {"A": a, "B": b}


PREFUNDED = {
    1: {"A": ("0", "0", "0"), "B": ("1.00", "0", "1.00"), "cash": "1.00"},
    2: {"A": ("0", "1.50", "-1.50"), "cash": "-1.50"},
    3: {"cash": "0"},
    4: {"A": ("0.875", "0.25", "0.625"), "B": ("0", "1.40", "-1.40"), "cash": "-0.775"},
}
ON_REDEMPTION = {
    1: {"A": ("0", "0", "0"), "B": ("0", "0", "0"), "cash": "0"},
    2: {"A": ("0", "1.50", "-1.50"), "B": ("0.92", "0", "0.92"), "cash": "-0.58"},
    3: {"cash": "0"},
    4: {"A": ("0.805", "0.23", "0.575"), "B": ("0", "1.40", "-1.40"), "cash": "-0.825"},
}
MONTH = {
    "prefunded": {"A": "-0.875", "B": "-0.40", "cash": "-1.275"},
    "on_redemption": {"A": "-0.925", "B": "-0.48", "cash": "-1.405"},
}
DECOMPOSITION = {
    "prefunded": {
        "issue_revenue": "1.875",
        "reimbursements": "2.90",
        "clawback_credits": "0.25",
        # Issue 15: no order reimbursed at its cost price, nothing spent at the operator.
        "reward_margin": "0",
        "result": "-1.275",
    },
    "on_redemption": {
        "fees": "0.225",
        "debt_recovered": "0",
        "redeemed_at_operator": "0",
        "operator_funded_redeemed": "1.40",
        "clawback_credits": "0.23",
        "reward_margin": "0",
        "result": "-1.405",
    },
}
# (issued, confirmed) per merchant and day: awarded that day, and counted as issued that day.
ISSUED = {
    1: {"A": (110, 0), "B": (80, 80)},
    2: {"A": (0, 0)},
    4: {"A": (0, 70), "B": (0, 0)},
}


def issued_and_confirmed(session: Session, day: date, merchants: dict[str, int]):
    run = session.execute(
        select(runs.runs.c.id).where(runs.runs.c.business_date == day, runs.runs.c.kind == "final")
    ).scalar_one()
    name = {v: k for k, v in merchants.items()}
    rows = session.execute(
        select(SettlementPosition).where(SettlementPosition.run_id == run)
    ).scalars()
    return {name[p.merchant_id]: (p.issued, p.confirmed) for p in rows}


@pytest.mark.parametrize(
    ("model", "expected"), [("prefunded", PREFUNDED), ("on_redemption", ON_REDEMPTION)]
)
def test_pending_points_are_settled_on_the_day_they_are_confirmed(
    session: Session, model: str, expected: dict[int, dict[str, Any]]
) -> None:
    use_model(session, model)
    merchants = the_days(session)

    month: dict[str, Decimal] = {}
    by_merchant: dict[str, Decimal] = {}
    cash = Decimal(0)
    for n, day in DAYS.items():
        found = positions(session, day, merchants)
        want = {
            name: tuple(Decimal(x) for x in cells)
            for name, cells in expected[n].items()
            if name != "cash"
        }
        assert found["positions"] == want, f"day {n}"
        assert money(found["totals"]["nets"]) == Decimal(expected[n]["cash"]), f"day {n}"
        operator = found["totals"]["operator"]
        assert money(operator["result"]) == money(found["totals"]["nets"]), f"day {n}"
        cash += money(found["totals"]["nets"])
        for term, amount in operator.items():
            month[term] = month.get(term, Decimal(0)) + money(amount)
        for name, (_, _, net) in want.items():
            by_merchant[name] = by_merchant.get(name, Decimal(0)) + net
    assert cash == Decimal(MONTH[model]["cash"])
    assert by_merchant == {k: Decimal(MONTH[model][k]) for k in ("A", "B")}
    assert month == {k: Decimal(v) for k, v in DECOMPOSITION[model].items()}
    for n, want_issued in ISSUED.items():
        got = issued_and_confirmed(session, DAYS[n], merchants)
        assert {k: got[k] for k in want_issued} == want_issued, f"day {n}"


def test_the_ops_run_page_shows_points_issued_and_confirmed(client, session: Session) -> None:
    use_model(session, "prefunded")
    the_days(session)
    sign_in_as(client, session, "finance")
    day_one = session.execute(
        select(runs.runs.c.public_id).where(
            runs.runs.c.business_date == DAYS[1], runs.runs.c.kind == "final"
        )
    ).scalar_one()

    page = client.get(f"/ops/settlement/runs/{day_one}")

    assert page.status_code == 200
    text = " ".join(re.sub(r"<[^>]+>", " ", page.get_data(as_text=True)).split())
    # A awarded 110 points, all pending: none counted as issued, nothing owed.
    assert re.search(r"\bA mer_\w+ 110 0 0 0 0 0 0.00 0.00 0.00 EUR", text), text
    assert re.search(r"\bB mer_\w+ 80 80 0 0 0 0 1.00 0.00 1.00 EUR", text), text
