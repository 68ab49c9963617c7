"""SPEC's appendix, a worked month, under both funding models, from the till's side: purchases
in money at merchants that earn 1 and 2 points a euro, redemptions with the member's code and a
refund on a return receipt, all through the merchant API's services, the welcome bonus from the
first-purchase rule; each day settled at its end, then the month stated. Every owed, receivable
and net amount of the appendix's tables, the operator's cash and its decomposition, the lots
and balances of its first table, and the statements, exactly."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import economics
from coalition.ledger import reads
from coalition.ledger.models import Account, Lot
from coalition.ledger.rows import Actor
from coalition.members import codes
from coalition.members.models import Member
from coalition.members.services import create_member
from merchants import purchases, redemptions
from merchants.schemas import (
    PurchaseResultSchema,
    PurchaseSchema,
    RedemptionResultSchema,
    RedemptionSchema,
    RefundResultSchema,
)
from merchants.services import create_merchant
from settlement import runs, statements
from settlement.models import SettlementPosition

DAY = {n: date(2026, 10, n) for n in (1, 2, 3)}
OCTOBER = [date(2026, 10, 1) + timedelta(days=n) for n in range(31)]
TILL = Actor("merchant_client", "appendix-till")
# SPEC's appendix: one tier (x1), no pending window; the rest are the example terms.
ONE_TIER = [{"name": "Member", "qualifying_spend": "0", "multiplier": "1"}]


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 10, day, hour, tzinfo=UTC)


def use_model(session: Session, model: str) -> None:
    """SPEC's appendix terms, in force from before its month, under `model`."""
    terms = economics.DEFAULT_TERMS.to_json() | {
        "currency": "EUR",
        "point_value": "0.01",
        "issue_price": "0.0125",
        "operator_fee_rate": "0.15",
        "welcome_bonus": 100,
        "tiers": ONE_TIER,
        "funding_model": model,
    }
    economics.set_version(
        session,
        effective_from=date(2026, 9, 1),
        settings=terms,
        merchant_id=None,
        actor_id="test",
        now=at(1),
    )


def _public_id(session: Session, member_id: int) -> str:
    return session.execute(select(Member.public_id).where(Member.id == member_id)).scalar_one()


def _card(session: Session, member_id: int) -> str:
    return session.execute(select(Member.card_number).where(Member.id == member_id)).scalar_one()


def buy(session: Session, merchant_id: int, card: str, euros: int, receipt: str, when: datetime):
    """At the till, by card number, in money."""
    line = PurchaseSchema().load(
        {"member": card, "amount": euros * 100, "currency": "EUR", "external_id": receipt}
    )
    result = purchases.record_purchase(
        session, merchant_id=merchant_id, purchase=line, actor=TILL, now=when
    )
    assert not result.replayed, result
    return PurchaseResultSchema().dump(result)


def redeem(
    session: Session, merchant_id: int, member_id: int, points: int, receipt: str, when: datetime
):
    """At the till, with the member's current code (SPEC 2's proof of presence)."""
    secret = session.execute(select(Member.totp_secret).where(Member.id == member_id)).scalar_one()
    line = RedemptionSchema().load(
        {
            "member": _public_id(session, member_id),
            "code": codes.current_code(secret, when)[0],
            "points": points,
            "external_id": receipt,
        }
    )
    result = redemptions.record_redemption(
        session,
        merchant_id=merchant_id,
        redemption=line,
        actor=TILL,
        check=redemptions.CodeCheck(session, when),
        now=when,
    )
    assert not result.replayed, result
    return RedemptionResultSchema().dump(result)


def lots_of(session: Session, member_id: int) -> list[tuple[str, int, int]]:
    """(funder, points, remaining) of each of the member's lots, oldest first."""
    accounts = Account.__table__
    issuers = Account.__table__.alias("issuers")
    rows = session.execute(
        select(issuers.c.merchant_id, Lot.points, Lot.remaining)
        .join(accounts, accounts.c.id == Lot.account_id)
        .join(issuers, issuers.c.id == Lot.issuer_account_id)
        .where(accounts.c.member_id == member_id)
        .order_by(Lot.id)
    ).all()
    return [(row.merchant_id or "op", row.points, row.remaining) for row in rows]


def the_month(session: Session) -> dict[str, int]:
    """The appendix's events through the merchant API's services, each day settled at its end;
    the lots and balances of its first table checked as they happen. Returns the merchants."""
    a = create_merchant(session, "A", now=at(1, 0), details={"base_rate": "1"})[0]
    b = create_merchant(session, "B", now=at(1, 0), details={"base_rate": "2"})[0]
    m1, m2 = (create_member(session, now=at(1, 0))[0] for _ in range(2))
    card1, card2 = _card(session, m1), _card(session, m2)

    # Day 1: M1 buys 80.00 EUR at A, M2 40.00 EUR at B: first purchases, so both welcomed.
    bought = buy(session, a, card1, 80, "A-0001", at(1, 11))
    assert bought["transaction"]["breakdown"] == {
        "base": 80,
        "campaign": 0,
        "tier": 0,
        "welcome": 100,
        "stamp": 0,
        "premium": 0,
    }
    other = buy(session, b, card2, 40, "B-0001", at(1, 12))
    assert (other["transaction"]["breakdown"]["base"], other["member"]["balance"]) == (80, 180)
    assert lots_of(session, m1) == [(a, 80, 80), ("op", 100, 100)]
    assert lots_of(session, m2) == [(b, 80, 80), ("op", 100, 100)]
    runs.settle(session, DAY[1], at(2, 1))

    # Day 2: M1 redeems 170 at B, M2 50 at A; A refunds 40.00 EUR of M1's purchase.
    assert redeem(session, b, m1, 170, "B-R-0001", at(2, 11))["member"]["balance"] == 10
    assert redeem(session, a, m2, 50, "A-R-0001", at(2, 12))["member"]["balance"] == 130
    refunded = purchases.refund_purchase(
        session,
        merchant_id=a,
        purchase_id=bought["transaction"]["id"],
        amount_minor=4000,
        external_id="A-RET-0001",
        actor=TILL,
        now=at(2, 13),
    )
    assert not refunded.replayed, refunded
    refund = RefundResultSchema().dump(refunded)
    assert refund["points_clawed_back"] == 40
    assert refund["member"]["balance"] == -30
    # L1 has none left; 10 from L2; 30 become debt.
    assert lots_of(session, m1) == [(a, 80, 0), ("op", 100, 0)]
    assert lots_of(session, m2) == [(b, 80, 30), ("op", 100, 100)]
    runs.settle(session, DAY[2], at(3, 1))

    # Day 3: M1 buys 20.00 EUR at B: 40 points and no welcome; the debt takes 30 of them.
    again = buy(session, b, card1, 20, "B-0002", at(3, 11))
    assert again["transaction"]["breakdown"]["welcome"] == 0
    assert again["transaction"]["points"] == 40
    assert again["member"]["balance"] == 10
    assert lots_of(session, m1)[-1] == (b, 40, 10)
    runs.settle(session, DAY[3], at(4, 1))

    # Outstanding at month end: 140 points (M1 10, M2 130).
    balances = [reads.balance(session, m, at(4))["balance"] for m in (m1, m2)]
    assert balances == [10, 130]
    return {"A": a, "B": b}


def money(value: Any) -> Decimal:
    """A figure as a value, whatever its representation: an exact decimal (string or Decimal)
    in major units, or money in minor units (`{"amount": 125, "currency": "EUR"}`)."""
    if isinstance(value, dict):
        amount = value["amount"]
        return Decimal(amount).scaleb(-2) if isinstance(amount, int) else Decimal(str(amount))
    return Decimal(str(value))


def positions(session: Session, day: date, merchants: dict[str, int]) -> dict[str, Any]:
    run = session.execute(
        select(runs.runs).where(runs.runs.c.business_date == day, runs.runs.c.kind == "final")
    ).one()
    rows = session.execute(
        select(SettlementPosition).where(SettlementPosition.run_id == run.id)
    ).scalars()
    name = {v: k for k, v in merchants.items()}
    found = {
        name[p.merchant_id]: tuple(money(x) for x in (p.owed, p.receivable, p.net)) for p in rows
    }
    return {"positions": found, "totals": run.totals}


# The appendix's tables: (owed, receivable, net) per merchant, and the operator's cash.
PREFUNDED = {
    1: {"A": ("1.00", "0", "1.00"), "B": ("1.00", "0", "1.00"), "cash": "2.00"},
    2: {"A": ("0", "1.00", "-1.00"), "B": ("0", "1.70", "-1.70"), "cash": "-2.70"},
    3: {"B": ("0.50", "0", "0.50"), "cash": "0.50"},
}
ON_REDEMPTION = {
    1: {"A": ("0", "0", "0"), "B": ("0", "0", "0"), "cash": "0"},
    2: {"A": ("0.92", "0.96", "-0.04"), "B": ("0.575", "1.70", "-1.125"), "cash": "-1.165"},
    3: {"B": ("0.345", "0", "0.345"), "cash": "0.345"},
}
MONTH_CASH = {"prefunded": "-0.20", "on_redemption": "-0.82"}

# The operator's month "computed from the ledger", term by term, as the appendix states it.
DECOMPOSITION = {
    "prefunded": {
        "issue_revenue": "2.50",
        "reimbursements": "2.20",
        "clawback_credits": "0.50",
        # Issue 15: no order reimbursed at its cost price, nothing spent at the operator.
        "reward_margin": "0",
        "result": "-0.20",
    },
    "on_redemption": {
        "fees": "0.24",
        "debt_recovered": "0.30",
        "redeemed_at_operator": "0",
        "operator_funded_redeemed": "0.90",
        "clawback_credits": "0.46",
        "reward_margin": "0",
        "result": "-0.82",
    },
}

# The statements (closing: positive, the merchant pays; negative, the operator pays it).
# prefunded: A 0.00, B receives 0.20; on_redemption: A receives 0.04, B receives 0.78.
STATEMENTS = {
    "prefunded": {"A": ("0.00", None), "B": ("-0.20", "transfer")},
    "on_redemption": {"A": ("-0.04", "transfer"), "B": ("-0.78", "transfer")},
}


@pytest.mark.parametrize(
    ("model", "expected"), [("prefunded", PREFUNDED), ("on_redemption", ON_REDEMPTION)]
)
def test_the_appendix_month_settles_to_the_cent(
    session: Session, model: str, expected: dict[int, dict[str, Any]]
) -> None:
    use_model(session, model)
    merchants = the_month(session)

    month: dict[str, Decimal] = {}
    cash = Decimal(0)
    for n, day in DAY.items():
        found = positions(session, day, merchants)
        want = {
            name: tuple(Decimal(x) for x in cells)
            for name, cells in expected[n].items()
            if name != "cash"
        }
        assert found["positions"] == want, f"day {n}"
        operator = found["totals"]["operator"]
        assert money(found["totals"]["nets"]) == Decimal(expected[n]["cash"]), f"day {n}"
        assert money(operator["result"]) == money(found["totals"]["nets"]), f"day {n}"
        cash += money(found["totals"]["nets"])
        for term, amount in operator.items():
            month[term] = month.get(term, Decimal(0)) + money(amount)
    assert cash == Decimal(MONTH_CASH[model])
    assert month == {k: Decimal(v) for k, v in DECOMPOSITION[model].items()}


@pytest.mark.parametrize("model", ["prefunded", "on_redemption"])
def test_the_appendix_month_is_stated_as_the_appendix_says(session: Session, model: str) -> None:
    use_model(session, model)
    merchants = the_month(session)
    for day in OCTOBER[3:]:
        runs.settle(session, day, datetime(2026, 11, 1, 1, tzinfo=UTC))

    stated = [
        statements.render(session, row)
        for row in statements.issue_month(session, "2026-10", datetime(2026, 11, 1, 2, tzinfo=UTC))
    ]

    by_name = {s["merchant"]["name"]: s for s in stated}
    assert set(by_name) == set(merchants)
    for name, (closing, payment) in STATEMENTS[model].items():
        statement = by_name[name]
        assert money(statement["opening"]) == 0, name
        assert money(statement["net"]) == money(statement["closing"]) == Decimal(closing), name
        # Its lines add up to its total to the cent, with the rounding line.
        lines = sum((money(line["amount"]) for line in statement["lines"]), Decimal(0))
        assert lines + money(statement["rounding"]) == money(statement["net"]), name
        assert (statement["payment"] or {}).get("kind") == payment, name
        if payment is not None:
            assert money(statement["payment"]["amount"]) == abs(Decimal(closing)), name
    # The operator's cash for the month is what it pays and is paid.
    assert sum((money(s["closing"]) for s in stated), Decimal(0)) == Decimal(MONTH_CASH[model])
