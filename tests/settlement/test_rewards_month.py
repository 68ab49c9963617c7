"""Issue 15's worked month (docs/settlement.md, "Rewards and prize draws"): till redemptions,
orders of a partner's rewards reimbursed at the point value and at a cost price, an order of the
operator's own reward, a cancelled order and prize draw entries, settled day by day under both
funding models with SPEC's appendix terms, then stated; each day's positions line by line, the
operator's result term by term, a supplier's statement and the monthly report's rewards.

November 2026, `point_value` 0.01, `issue_price` 0.0125, fee 0.15 (0.0115 a point owed by an
issuer under `on_redemption`); no welcome bonus in play.

| day | what happens |
| --- | --- |
| 1 | M1 earns 300 points at A (a café that lists rewards), M2 400 at B (a bookshop) |
| 2 | M1 redeems 50 at B's till; orders A's espresso cup (100 points, no cost price) and the |
|   | operator's tote bag (60); buys 2 entries of a prize draw at 10 points (20). M2 orders |
|   | A's dinner voucher (250 points, cost price 2.00) and an espresso cup (100); buys 3 |
|   | entries of the draw (30) |
| 3 | M2 cancels its cup: its 100 points go back to B's lot |

prefunded: A's month is 3.75 issued - 2.00 cups - 2.00 dinner + 1.00 cup cancelled = 0.75 (A
pays); B's 5.00 - 0.50 = 4.50; the operator keeps 0.50 on the dinner (2.50 of points for a 2.00
cost price) and its tote bag and the draw cost it nothing in settlement (their issuers prepaid).

on_redemption: A owes 0.575 (50 of its points at B) + 1.84 (160 spent on rewards: its own cup,
the tote bag) + 0.23 (20 on the draw) + 1.00 (the cup cancelled) and is owed 2.00 (the cups)
+ 2.00 (the dinner at cost): -0.355, stated -0.36 (the coalition pays A 0.36). B owes 4.025
(350 on A's rewards) + 0.345 (30 on the draw) and is owed 0.50 + 1.15 (the cup's points back):
2.72. The operator: fees 0.765 + points spent at it 1.10 + the dinner's margin 0.50 = 2.365."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition.ledger.rows import Actor
from draws import services as draws
from rewards import services as catalogue
from rewards.models import Order
from settlement import renditions, reports, runs, statements
from settlement.models import SettlementPosition
from tests import factories as f
from tests.draws.helpers import open_draw
from tests.ops_helpers import sign_in_as
from tests.rewards.helpers import GIFT
from tests.settlement.test_appendix import use_model

DAY = {n: date(2026, 11, n) for n in (1, 2, 3)}
NOVEMBER = [date(2026, 11, 1) + timedelta(days=n) for n in range(30)]


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def the_month(session: Session) -> dict[str, int]:
    """The month's events, each day settled at its end. Returns the merchants."""
    a, b = f.merchant(session, "Café Aurora"), f.merchant(session, "Bookshop Borealis")
    cup = catalogue.create_reward(session, a, {**GIFT, "points": 100}, f.T0).id
    dinner = catalogue.create_reward(
        session,
        a,
        {
            **GIFT,
            "name": "Dinner for two",
            "kind": "voucher",
            "points": 250,
            "cost_price": {"amount": 200, "currency": "EUR"},
        },
        f.T0,
    ).id
    tote = catalogue.create_reward(session, None, {**GIFT, "name": "Tote bag", "points": 60}, f.T0)
    m1, m2 = f.member(session), f.member(session)
    draw = open_draw(session, entry_points=10, now=at(1, 9), closes_in=timedelta(days=20))

    def order(member: int, reward: str, when: datetime) -> str:
        return catalogue.place_order(
            session, member_id=member, reward_id=reward, quantity=1, now=when
        ).id

    def enter_draw(member: int, points: int, when: datetime) -> None:
        entries = points // 10
        draws.enter(
            session,
            draw_id=draw,
            member_id=member,
            entries=entries,
            actor=Actor("member"),
            now=when,
        )

    f.purchase(session, m1, a, 300, now=at(1, 11))
    f.purchase(session, m2, b, 400, now=at(1, 12))
    runs.settle(session, DAY[1], at(2, 1))

    f.redeem(session, m1, b, 50, now=at(2, 9))
    order(m1, cup, at(2, 10))
    order(m1, tote.id, at(2, 11))
    enter_draw(m1, 20, at(2, 12))
    order(m2, dinner, at(2, 13))
    second_cup = order(m2, cup, at(2, 14))
    enter_draw(m2, 30, at(2, 15))
    runs.settle(session, DAY[2], at(3, 1))

    account = session.execute(
        select(Order.member_account_id).where(Order.public_id == second_cup)
    ).scalar_one()
    catalogue.cancel_order(session, member_account_id=account, order_id=second_cup, now=at(3, 9))
    runs.settle(session, DAY[3], at(4, 1))
    return {"A": a, "B": b}


# Each day's positions: merchant -> {line: (points, exact amount)}, and the nets.
PREFUNDED = {
    1: {"A": {"issue_charges": (300, "3.75")}, "B": {"issue_charges": (400, "5.00")}},
    2: {
        "A": {"reward_orders": (200, "2.00"), "reward_orders_at_cost": (250, "2.00")},
        "B": {"reimbursements": (50, "0.50")},
    },
    3: {"A": {"reward_order_cancellations": (100, "1.00")}},
}
ON_REDEMPTION = {
    1: {"A": {}, "B": {}},
    2: {
        "A": {
            "redemption_charges": (50, "0.575"),
            "reward_charges": (160, "1.84"),
            "draw_entries": (20, "0.23"),
            "reward_orders": (200, "2.00"),
            "reward_orders_at_cost": (250, "2.00"),
        },
        "B": {
            "reward_charges": (350, "4.025"),
            "draw_entries": (30, "0.345"),
            "reimbursements": (50, "0.50"),
        },
    },
    3: {
        "A": {"reward_order_cancellations": (100, "1.00")},
        "B": {"reward_charge_reversals": (100, "1.15")},
    },
}
NETS = {
    "prefunded": {1: {"A": "3.75", "B": "5.00"}, 2: {"A": "-4.00", "B": "-0.50"}, 3: {"A": "1.00"}},
    "on_redemption": {
        1: {"A": "0", "B": "0"},
        2: {"A": "-1.355", "B": "3.87"},
        3: {"A": "1.00", "B": "-1.15"},
    },
}
# The operator's month, term by term.
DECOMPOSITION = {
    "prefunded": {
        "issue_revenue": "8.75",
        "reimbursements": "4.00",
        "clawback_credits": "0",
        "reward_margin": "0.50",
        "result": "5.25",
    },
    "on_redemption": {
        "fees": "0.765",
        "debt_recovered": "0",
        "redeemed_at_operator": "1.10",
        "operator_funded_redeemed": "0",
        "clawback_credits": "0",
        "reward_margin": "0.50",
        "result": "2.365",
    },
}
# A's statement, the supplier of rewards: (kind, description, amount), then exact net,
# rounding, net.
A_STATEMENT = {
    "prefunded": (
        [
            ("issue_charges", "Points issued: 300 points \u00d7 0.0125", "3.75"),
            (
                "reward_order_cancellations",
                "Orders of your rewards cancelled: 100 points \u00d7 0.01",
                "1.00",
            ),
            ("reward_orders", "Rewards ordered from you: 200 points \u00d7 0.01", "-2.00"),
            (
                "reward_orders_at_cost",
                "Rewards ordered from you, at their cost price: 250 points",
                "-2.00",
            ),
        ],
        ("0.75", "0.00", "0.75"),
    ),
    "on_redemption": (
        [
            (
                "redemption_charges",
                "Your points redeemed (on redemption): 50 points \u00d7 0.0115",
                "0.575",
            ),
            (
                "reward_charges",
                "Your points spent on rewards (on redemption): 160 points \u00d7 0.0115",
                "1.84",
            ),
            (
                "draw_entries",
                "Your points spent on prize draw entries (on redemption): 20 points \u00d7 0.0115",
                "0.23",
            ),
            (
                "reward_order_cancellations",
                "Orders of your rewards cancelled: 100 points \u00d7 0.01",
                "1.00",
            ),
            ("reward_orders", "Rewards ordered from you: 200 points \u00d7 0.01", "-2.00"),
            (
                "reward_orders_at_cost",
                "Rewards ordered from you, at their cost price: 250 points",
                "-2.00",
            ),
        ],
        ("-0.355", "-0.005", "-0.36"),
    ),
}
CLOSING = {"prefunded": {"A": 75, "B": 450}, "on_redemption": {"A": -36, "B": 272}}


def _positions(session: Session, day: date, merchants: dict[str, int]) -> tuple[dict, dict, Any]:
    run = session.execute(
        select(runs.runs).where(runs.runs.c.business_date == day, runs.runs.c.kind == "final")
    ).one()
    name = {v: k for k, v in merchants.items()}
    rows = list(
        session.execute(
            select(SettlementPosition).where(SettlementPosition.run_id == run.id)
        ).scalars()
    )
    lines = {
        name[p.merchant_id]: {k: (c["points"], c["amount"]) for k, c in p.components.items()}
        for p in rows
    }
    nets = {name[p.merchant_id]: Decimal(p.net) for p in rows}
    return lines, nets, run


@pytest.mark.both_backends  # the embedded default prices the same
@pytest.mark.parametrize(
    ("model", "expected"), [("prefunded", PREFUNDED), ("on_redemption", ON_REDEMPTION)]
)
def test_orders_and_draw_entries_are_priced_as_their_own_lines_and_money_is_conserved(
    session: Session, model: str, expected: dict[int, dict[str, Any]]
) -> None:
    use_model(session, model)
    merchants = the_month(session)

    month: dict[str, Decimal] = {}
    for n, day in DAY.items():
        lines, nets, run = _positions(session, day, merchants)
        assert lines == expected[n], f"day {n}"
        assert nets == {k: Decimal(v) for k, v in NETS[model][n].items()}, f"day {n}"
        assert sum(nets.values(), Decimal(0)) == Decimal(run.totals["operator"]["result"])
        for term, amount in run.totals["operator"].items():
            month[term] = month.get(term, Decimal(0)) + Decimal(amount)
    assert month == {k: Decimal(v) for k, v in DECOMPOSITION[model].items()}


@pytest.mark.parametrize("model", ["prefunded", "on_redemption"])
def test_a_supplier_of_rewards_is_stated_its_orders_at_the_point_value_and_at_cost_price(
    session: Session, model: str
) -> None:
    use_model(session, model)
    merchants = the_month(session)
    for day in NOVEMBER[3:]:
        runs.settle(session, day, datetime(2026, 12, 1, 1, tzinfo=UTC))

    stated = {
        s["merchant"]["id"]: s
        for s in (
            statements.render(session, row)
            for row in statements.issue_month(
                session, "2026-11", datetime(2026, 12, 1, 2, tzinfo=UTC)
            )
        )
    }
    by_name = {s["merchant"]["name"]: s for s in stated.values()}
    supplier = by_name["Café Aurora"]
    lines, (exact, rounding, net) = A_STATEMENT[model]
    assert [(x["kind"], x["description"], x["amount"]) for x in supplier["lines"]] == lines
    assert (supplier["exact_net"], supplier["rounding"]) == (exact, rounding)
    assert Decimal(supplier["net"]["amount"]).scaleb(-2) == Decimal(net)
    closings = {
        name: by_name[title]["closing"]["amount"]
        for name, title in (("A", "Café Aurora"), ("B", "Bookshop Borealis"))
    }
    assert closings == CLOSING[model]
    assert set(merchants) == {"A", "B"}
    # What the portal serves it as: its lines in the CSV and the PDF.
    rows = list(csv.reader(io.StringIO(renditions.statement_csv(supplier), newline="")))
    line = ["reward_orders_at_cost", "Rewards ordered from you, at their cost price: 250 points"]
    assert [*line, "-2.00"] in rows
    pdf = PdfReader(io.BytesIO(renditions.statement_pdf(supplier)))
    text = " ".join(" ".join(page.extract_text().split()) for page in pdf.pages)
    assert "Rewards ordered from you, at their cost price: 250 points" in text


@pytest.mark.parametrize(("model", "charged"), [("prefunded", "0.00"), ("on_redemption", "0.575")])
def test_the_monthly_report_shows_the_rewards_redeemed_per_supplier_and_the_draw_entries(
    session: Session, model: str, charged: str
) -> None:
    use_model(session, model)
    the_month(session)

    report = reports.month_report(session, "2026-11")

    found = [
        (r["supplier"]["name"], r["orders"], r["cancelled"], r["points"], r["reimbursed"])
        for r in report["rewards"]["suppliers"]
    ]
    # A: two cups and a dinner ordered, one cup cancelled: 350 points, reimbursed 1.00 for the
    # cup kept and 2.00 for the dinner at its cost price. The operator's own tote bag: nothing.
    assert found == [("Café Aurora", 3, 1, 350, "3.00"), ("Coalition operator", 1, 0, 60, None)]
    assert report["rewards"]["draw_entries"] == {
        "entries": 2,
        "refunded": 0,
        "points": 50,
        "charged": charged,
    }


def test_the_report_page_and_its_downloads_show_the_rewards_per_supplier(
    client: FlaskClient, session: Session
) -> None:
    use_model(session, "on_redemption")
    the_month(session)
    sign_in_as(client, session, "finance")

    html = client.get("/ops/settlement/report", query_string={"month": "2026-11"}).get_data(
        as_text=True
    )
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert "Rewards redeemed per supplier" in text
    assert "Café Aurora 3 1 350 3.00" in text
    assert "Coalition operator 1 0 60 its own" in text
    assert "Entries 2" in text and "Charged to issuers (EUR) 0.575" in text

    as_csv = client.get("/ops/settlement/report.csv?month=2026-11").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(as_csv, newline="")))
    assert ["operator", "Coalition operator", "1", "0", "60", ""] in rows
    assert ["draw_entries_charged", "0.575"] in rows
    assert any(row[1:] == ["Café Aurora", "3", "1", "350", "3.00"] for row in rows)
    as_pdf = client.get("/ops/settlement/report.pdf?month=2026-11")
    pdf = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(as_pdf.data)).pages)
    assert "Rewards redeemed per supplier" in pdf and "Prize draw entries" in pdf
