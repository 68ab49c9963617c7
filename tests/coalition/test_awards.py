"""Awards (`coalition.ledger.awards`): the one way points are issued, for one purchase or many."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from coalition.ledger import awards, operations, reads
from coalition.ledger.accounts import merchant_account_id, operator_account_id
from coalition.ledger.models import Account
from tests import factories as f
from tests.factories import T0, TILL
from tests.ledger_helpers import events, flows_of, lots_of

pytestmark = pytest.mark.both_backends


def test_a_purchase_gives_one_lot_per_funder_merchant_first(session):
    shop, alice = f.merchant(session), f.member(session)

    result = f.purchase(session, alice, shop, 80, welcome=100, tier=20)

    assert result["transaction"]["points"] == 200
    assert result["member"] == {"balance": 200, "debt": 0}
    assert [(row.source, row.points) for row in lots_of(session, alice)] == [
        ("merchant", 80),
        ("tier", 20),
        ("welcome", 100),
    ]
    shop_account, operator = merchant_account_id(session, shop), operator_account_id(session)
    assert [row.issuer_account_id for row in lots_of(session, alice)] == [
        shop_account,
        operator,
        operator,
    ]
    [event] = events(session, "purchase.created")
    assert event["transaction"]["id"] == result["transaction"]["id"]


def test_the_same_receipt_cannot_be_awarded_twice(session):
    shop, alice = f.merchant(session), f.member(session)
    kwargs = dict(
        member_id=alice,
        merchant_id=shop,
        parts={"merchant": 5},
        expires_at=T0 + f.LIFETIME,
        amount_minor=500,
        currency="EUR",
        external_id="receipt-x",
        actor=TILL,
        now=T0,
    )
    awards.award(session, **kwargs)
    savepoint = session.begin_nested()
    with pytest.raises(IntegrityError):
        awards.award(session, **kwargs)
    savepoint.rollback()
    assert reads.balance(session, alice, T0)["balance"] == 5


def test_awards_at_once_to_a_member_in_debt_repay_it_in_order_as_one_by_one(session):
    grocer, cinema, bakery = (
        f.merchant(session, "Grocer"),
        f.merchant(session, "Cinema"),
        f.merchant(session, "Bakery"),
    )
    alice, bob = f.member(session), f.member(session)
    bought = f.purchase(session, alice, grocer, 60)
    f.redeem(session, alice, cinema, 60)
    operations.refund(
        session,
        purchase_id=bought["transaction"]["id"],
        merchant_id=grocer,
        amount_minor=6000,
        actor=TILL,
        now=T0,
    )
    accounts = Account.__table__
    alice_account, bob_account = (
        session.execute(select(accounts.c.id).where(accounts.c.member_id == m)).scalar_one()
        for m in (alice, bob)
    )

    def award(account_id: int, points: int) -> awards.Award:
        return awards.Award(
            account_id=account_id,
            parts={"merchant": points},
            expires_at=T0 + f.LIFETIME,
            amount_minor=points * 100,
            currency="EUR",
        )

    results = awards.award_many(
        session,
        merchant_id=bakery,
        awards=[
            award(account_id, points)
            for account_id, points in (
                (alice_account, 25),
                (bob_account, 5),
                (alice_account, 20),
                (alice_account, 50),
            )
        ],
        actor=TILL,
        now=T0,
    )

    assert [r["transaction"]["debt_repaid"] for r in results] == [25, 0, 20, 15]
    assert [r["member"] for r in results] == [
        {"balance": -35, "debt": 35},
        {"balance": 5, "debt": 0},
        {"balance": -15, "debt": 15},
        {"balance": 35, "debt": 0},
    ]
    # The debt is repaid to the operator from the bakery's new lots; 35 points stay open.
    repaid = flows_of(session)[
        (merchant_account_id(session, bakery), operator_account_id(session), "repay")
    ]
    assert repaid == 60
    assert [(lot.points, lot.remaining) for lot in lots_of(session, alice)][-3:] == [
        (25, 0),
        (20, 0),
        (50, 35),
    ]
    assert reads.balance(session, alice, T0) == {
        "balance": 35,
        "available": 35,
        "held": 0,
        "pending": 0,
        "debt": 0,
    }
