"""Redemptions that pay for something other than a discount at a till (issue 15): a reward
ordered from the catalogue (its supplier the redeemer) or a prize draw's entry (the operator the
redeemer). The ledger records what the points paid for, lets the operator be the redeemer, gives
a cancelled one's points back to the very lots they came from, and leaves the announcing to the
order's or the draw's own event."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from coalition.errors import AlreadyReversed, NotFound
from coalition.ledger import operations
from coalition.ledger.accounts import merchant_account_id, operator_account_id
from coalition.ledger.models import Transaction
from tests import factories as f
from tests.factories import T0, TILL
from tests.ledger_helpers import events, flows_of, lots_of

both_backends = pytest.mark.both_backends


def _spend(session, member, merchant, points, purpose):
    return operations.redeem(
        session,
        member_id=member,
        merchant_id=merchant,
        points=points,
        actor=TILL,
        now=T0,
        purpose=purpose,
    )


def _row(session, public_id):
    return session.execute(
        select(Transaction).where(Transaction.public_id == public_id)
    ).scalar_one()


@both_backends
def test_a_draw_entry_is_a_redemption_at_the_operator_and_no_till_hears_of_it(session):
    cafe, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, cafe, 100)

    entry = _spend(session, alice, None, 30, "draw_entry")

    assert entry["member"]["balance"] == 70
    row = _row(session, entry["transaction"]["id"])
    assert (row.type, row.merchant_id, row.purpose) == ("redeem", None, "draw_entry")
    # Cafe's points went to the operator's account, not to any merchant's.
    flows = flows_of(session)
    assert flows[(merchant_account_id(session, cafe), operator_account_id(session), "redeem")] == 30
    assert events(session, "redemption.created") == []


@both_backends
def test_an_order_is_a_redemption_at_its_supplier_marked_as_an_order(session):
    cafe, florist, alice = f.merchant(session), f.merchant(session, "Florist"), f.member(session)
    f.purchase(session, alice, cafe, 100)

    order = _spend(session, alice, florist, 40, "order")

    row = _row(session, order["transaction"]["id"])
    assert (row.merchant_id, row.purpose) == (florist, "order")
    flows = flows_of(session)
    assert (
        flows[(merchant_account_id(session, cafe), merchant_account_id(session, florist), "redeem")]
        == 40
    )
    assert events(session, "redemption.created") == []
    # A till's redemption is still announced, and has no purpose.
    till = f.redeem(session, alice, cafe, 10)
    assert _row(session, till["transaction"]["id"]).purpose is None
    assert len(events(session, "redemption.created")) == 1


@both_backends
def test_cancelling_gives_the_points_back_to_the_very_lots_once(session):
    early, late, alice = (
        f.merchant(session, "Early"),
        f.merchant(session, "Late"),
        f.member(session),
    )
    f.purchase(session, alice, late, 50, expires_at=T0 + timedelta(days=400))
    f.purchase(session, alice, early, 30, expires_at=T0 + timedelta(days=100))
    entry = _spend(session, alice, None, 60, "draw_entry")
    assert [(lot.points, lot.remaining) for lot in lots_of(session, alice)] == [(50, 20), (30, 0)]

    undone = operations.reverse_redemption(
        session,
        redemption_id=entry["transaction"]["id"],
        merchant_id=None,
        actor=TILL,
        now=T0 + timedelta(hours=1),
    )

    assert undone["member"]["balance"] == 80
    assert [(lot.points, lot.remaining) for lot in lots_of(session, alice)] == [(50, 50), (30, 30)]
    reversal = _row(session, undone["transaction"]["id"])
    assert (reversal.type, reversal.merchant_id, reversal.purpose) == (
        "reversal",
        None,
        "draw_entry",
    )
    assert events(session, "redemption.reversed") == []
    with pytest.raises(AlreadyReversed):
        operations.reverse_redemption(
            session, redemption_id=entry["transaction"]["id"], merchant_id=None, actor=TILL, now=T0
        )


@both_backends
def test_a_merchant_cannot_reverse_the_operators_redemption_nor_the_operator_a_merchants(session):
    cafe, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, cafe, 100)
    at_operator = _spend(session, alice, None, 10, "draw_entry")
    at_cafe = _spend(session, alice, cafe, 10, "order")

    with pytest.raises(NotFound):
        operations.reverse_redemption(
            session,
            redemption_id=at_operator["transaction"]["id"],
            merchant_id=cafe,
            actor=TILL,
            now=T0,
        )
    with pytest.raises(NotFound):
        operations.reverse_redemption(
            session,
            redemption_id=at_cafe["transaction"]["id"],
            merchant_id=None,
            actor=TILL,
            now=T0,
        )


def test_the_database_refuses_a_purpose_on_anything_but_a_redemption(session):
    # PostgreSQL: SQLite cannot add a check to the table in place (the migration says why).
    cafe, alice = f.merchant(session), f.member(session)
    earned = f.purchase(session, alice, cafe, 100)
    row = _row(session, earned["transaction"]["id"])

    with pytest.raises(IntegrityError), session.begin_nested():
        session.execute(
            Transaction.__table__.update().where(Transaction.id == row.id).values(purpose="order")
        )
