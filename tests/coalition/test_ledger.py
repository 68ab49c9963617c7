"""The ledger's operations, as a till, a member and the operator would see them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from coalition.errors import (
    AlreadyReversed,
    InsufficientPoints,
    InvalidRequest,
    NotFound,
    RefundExceedsPurchase,
)
from coalition.ledger import holds, operations, reads
from coalition.ledger.accounts import merchant_account_id, operator_account_id
from coalition.ledger.models import Transaction, Transfer
from tests import factories as f
from tests.factories import T0, TILL
from tests.ledger_helpers import events, flows_of, lots_of

pytestmark = pytest.mark.both_backends


def test_a_redemption_spends_the_soonest_expiring_points_first(session):
    early, late, cafe = (
        f.merchant(session, "Early"),
        f.merchant(session, "Late"),
        f.merchant(session, "Cafe"),
    )
    alice = f.member(session)
    f.purchase(session, alice, late, 50, expires_at=T0 + timedelta(days=400))
    f.purchase(session, alice, early, 30, expires_at=T0 + timedelta(days=100))

    f.redeem(session, alice, cafe, 40)

    assert [(row.points, row.remaining) for row in lots_of(session, alice)] == [(50, 40), (30, 0)]
    cafe_account = merchant_account_id(session, cafe)
    flows = flows_of(session)
    assert flows[(merchant_account_id(session, early), cafe_account, "redeem")] == 30
    assert flows[(merchant_account_id(session, late), cafe_account, "redeem")] == 10


def test_redeeming_exactly_the_balance_leaves_zero_and_one_more_point_is_refused(session):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 120)

    spent = f.redeem(session, alice, shop, 120)
    assert spent["member"] == {"balance": 0, "available": 0, "debt": 0}

    before = session.execute(select(func.count()).select_from(Transfer)).scalar_one()
    with pytest.raises(InsufficientPoints) as refusal:
        f.redeem(session, alice, shop, 1)
    assert refusal.value.extra["available"] == 0
    assert session.execute(select(func.count()).select_from(Transfer)).scalar_one() == before


@pytest.mark.parametrize("points", [0, -5, 1.5, "10", True, 10**13])
def test_nonsense_point_amounts_are_refused(session, points):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 10)
    with pytest.raises(InvalidRequest):
        operations.redeem(
            session, member_id=alice, merchant_id=shop, points=points, actor=TILL, now=T0
        )


def test_the_appendix_month_leaves_the_lots_and_balances_it_shows(session):
    """SPEC appendix: two merchants, two members, three days."""
    a, b = f.merchant(session, "A"), f.merchant(session, "B")
    m1, m2 = f.member(session), f.member(session)
    day = timedelta(days=1)
    # Day 1
    first = f.purchase(session, m1, a, 80, welcome=100, amount_minor=8000)
    f.purchase(session, m2, b, 80, welcome=100, amount_minor=4000)
    # Day 2
    f.redeem(session, m1, b, 170, now=T0 + day)
    f.redeem(session, m2, a, 50, now=T0 + day)
    refund = operations.refund(
        session,
        purchase_id=first["transaction"]["id"],
        merchant_id=a,
        amount_minor=4000,
        actor=TILL,
        now=T0 + day,
    )
    assert refund["transaction"]["points_clawed_back"] == 40
    assert refund["member"]["balance"] == -30
    assert refund["member"]["debt"] == 30
    # Day 3
    third = f.purchase(session, m1, b, 40, amount_minor=2000, now=T0 + 2 * day)
    assert third["transaction"]["debt_repaid"] == 30

    assert [(r.source, r.points, r.remaining) for r in lots_of(session, m1)] == [
        ("merchant", 80, 0),
        ("welcome", 100, 0),
        ("merchant", 40, 10),
    ]
    assert [(r.source, r.points, r.remaining) for r in lots_of(session, m2)] == [
        ("merchant", 80, 30),
        ("welcome", 100, 100),
    ]
    assert reads.balance(session, m1, T0 + 2 * day)["balance"] == 10
    assert reads.balance(session, m2, T0 + 2 * day)["balance"] == 130

    A, B, op = (
        merchant_account_id(session, a),
        merchant_account_id(session, b),
        operator_account_id(session),
    )
    flows = flows_of(session)
    assert flows[(A, B, "redeem")] == 80
    assert flows[(op, B, "redeem")] == 90
    assert flows[(B, A, "redeem")] == 50
    assert flows[(op, A, "clawback")] == 10  # the welcome lot's points, clawed by A
    assert flows[(None, A, "debt")] == 30
    assert flows[(B, op, "repay")] == 30


def test_refunds_claw_back_in_proportion_and_the_welcome_bonus_only_in_full(session):
    shop, alice = f.merchant(session), f.member(session)
    bought = f.purchase(session, alice, shop, 99, tier=33, welcome=100, amount_minor=9900)
    purchase_id = bought["transaction"]["id"]

    def refund(amount):
        return operations.refund(
            session,
            purchase_id=purchase_id,
            merchant_id=shop,
            amount_minor=amount,
            actor=TILL,
            now=T0,
        )

    first = refund(1000)  # floor(99 * 1000 / 9900) = 10, floor(33 * 1000 / 9900) = 3
    assert first["transaction"]["breakdown"] == {"merchant": 10, "tier": 3, "welcome": 0}
    second = refund(1000)  # cumulative 2000: 20 and 6, less what the first took
    assert second["transaction"]["breakdown"] == {"merchant": 10, "tier": 3, "welcome": 0}
    with pytest.raises(RefundExceedsPurchase) as too_much:
        refund(8000)
    assert too_much.value.extra["refundable"] == 7900
    last = refund(7900)
    assert last["transaction"]["breakdown"] == {"merchant": 79, "tier": 27, "welcome": 100}
    assert last["member"]["balance"] == 0
    assert [
        e["transaction"]["points_clawed_back"] for e in events(session, "purchase.refunded")
    ] == [13, 13, 206]


def _paid_points(session, public_id):
    return session.execute(
        select(Transaction.__table__.c.paid_points).where(
            Transaction.__table__.c.public_id == public_id
        )
    ).scalar_one()


def test_each_funders_clawback_comes_from_its_own_lot_first(session):
    """SPEC 2 and decision 5: the operator's tier clawback must not eat what is left of the
    merchant's lot, or the next redemption would spend the operator's points in its place (and
    under `on_redemption` charge the operator instead of the issuer)."""
    a, b, alice = f.merchant(session, "A"), f.merchant(session, "B"), f.member(session)
    A, B = merchant_account_id(session, a), merchant_account_id(session, b)
    op = operator_account_id(session)
    bought = f.purchase(session, alice, a, 80, tier=20, amount_minor=10_000)
    f.redeem(session, alice, b, 30)

    def refund(amount_minor):
        return operations.refund(
            session,
            purchase_id=bought["transaction"]["id"],
            merchant_id=a,
            amount_minor=amount_minor,
            actor=TILL,
            now=T0,
        )

    half = refund(5_000)

    assert half["transaction"]["breakdown"] == {"merchant": 40, "tier": 10}
    assert [(lot.source, lot.remaining) for lot in lots_of(session, alice)] == [
        ("merchant", 10),
        ("tier", 10),
    ]
    # The 40 clawed from A were still in its lot: points A never paid for.
    assert _paid_points(session, half["transaction"]["id"]) == 0

    before = flows_of(session)
    f.redeem(session, alice, b, 20)
    spent = {k: v - before.get(k, 0) for k, v in flows_of(session).items() if v != before.get(k)}
    assert spent == {(A, B, "redeem"): 10, (op, B, "redeem"): 10}

    rest = refund(5_000)

    assert rest["transaction"]["breakdown"] == {"merchant": 40, "tier": 10}
    assert rest["member"] == {"balance": -50, "available": 0, "debt": 50}
    # All 40 of A's points clawed now had been redeemed (30, then 10): A had paid for them.
    assert _paid_points(session, rest["transaction"]["id"]) == 40


def test_a_refund_of_points_spent_at_another_shop_becomes_debt_that_later_awards_repay(session):
    grocer, cinema, bakery = (
        f.merchant(session, "Grocer"),
        f.merchant(session, "Cinema"),
        f.merchant(session, "Bakery"),
    )
    alice = f.member(session)
    bought = f.purchase(session, alice, grocer, 60)
    f.redeem(session, alice, cinema, 60)

    refunded = operations.refund(
        session,
        purchase_id=bought["transaction"]["id"],
        merchant_id=grocer,
        amount_minor=6000,
        actor=TILL,
        now=T0,
    )
    assert refunded["member"] == {"balance": -60, "available": 0, "debt": 60}
    with pytest.raises(InsufficientPoints):
        f.redeem(session, alice, cinema, 1)

    partly = f.purchase(session, alice, bakery, 25)
    assert partly["transaction"]["debt_repaid"] == 25
    assert partly["member"] == {"balance": -35, "debt": 35}
    with pytest.raises(InsufficientPoints):
        f.redeem(session, alice, bakery, 1)

    cleared = f.purchase(session, alice, bakery, 50)
    assert cleared["transaction"]["debt_repaid"] == 35
    assert cleared["member"] == {"balance": 15, "debt": 0}
    f.redeem(session, alice, cinema, 15)


def test_a_reversal_gives_the_points_back_to_the_lots_they_came_from_once(session):
    grocer, cinema, alice = (
        f.merchant(session, "Grocer"),
        f.merchant(session, "Cinema"),
        f.member(session),
    )
    f.purchase(session, alice, grocer, 30, expires_at=T0 + timedelta(days=50))
    f.purchase(session, alice, grocer, 70, expires_at=T0 + timedelta(days=500))
    spent = f.redeem(session, alice, cinema, 80)

    reversed_ = operations.reverse_redemption(
        session, redemption_id=spent["transaction"]["id"], merchant_id=cinema, actor=TILL, now=T0
    )

    assert reversed_["member"]["balance"] == 100
    assert [(r.points, r.remaining) for r in lots_of(session, alice)] == [(30, 30), (70, 70)]
    with pytest.raises(AlreadyReversed):
        operations.reverse_redemption(
            session,
            redemption_id=spent["transaction"]["id"],
            merchant_id=cinema,
            actor=TILL,
            now=T0,
        )


def test_a_reversal_for_a_member_in_debt_repays_the_debt_first(session):
    grocer, cinema, alice = (
        f.merchant(session, "Grocer"),
        f.merchant(session, "Cinema"),
        f.member(session),
    )
    bought = f.purchase(session, alice, grocer, 50)
    spent = f.redeem(session, alice, cinema, 50)
    operations.refund(
        session,
        purchase_id=bought["transaction"]["id"],
        merchant_id=grocer,
        amount_minor=5000,
        actor=TILL,
        now=T0,
    )

    reversed_ = operations.reverse_redemption(
        session, redemption_id=spent["transaction"]["id"], merchant_id=cinema, actor=TILL, now=T0
    )

    assert reversed_["transaction"]["debt_repaid"] == 50
    assert reversed_["member"] == {"balance": 0, "available": 0, "debt": 0}


def test_a_merchant_cannot_touch_another_merchants_purchases_redemptions_or_holds(session):
    mine, theirs, alice = (
        f.merchant(session, "Mine"),
        f.merchant(session, "Theirs"),
        f.member(session),
    )
    bought = f.purchase(session, alice, theirs, 100)
    spent = f.redeem(session, alice, theirs, 10)
    held = holds.place_hold(session, member_id=alice, merchant_id=theirs, points=10, now=T0)

    with pytest.raises(NotFound):
        operations.refund(
            session,
            purchase_id=bought["transaction"]["id"],
            merchant_id=mine,
            amount_minor=100,
            actor=TILL,
            now=T0,
        )
    with pytest.raises(NotFound):
        operations.reverse_redemption(
            session, redemption_id=spent["transaction"]["id"], merchant_id=mine, actor=TILL, now=T0
        )
    with pytest.raises(NotFound):
        holds.capture_hold(
            session, hold_id=held["hold"]["id"], merchant_id=mine, actor=TILL, now=T0
        )
    with pytest.raises(NotFound):
        holds.void_hold(session, hold_id=held["hold"]["id"], merchant_id=mine, now=T0)
    assert reads.balance(session, alice, T0) == {
        "balance": 90,
        "available": 80,
        "held": 10,
        "pending": 0,
        "debt": 0,
    }
