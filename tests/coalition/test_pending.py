"""Pending points (SPEC 2) in the ledger: points awarded with a pending window count in the
balance but cannot be spent, held or used to repay a debt until the nightly job confirms them;
a refund inside the window cancels them; confirming twice confirms once; verify-ledger knows
the rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from coalition.errors import InsufficientPoints
from coalition.ledger import holds, operations, reads, verify
from coalition.ledger.models import Account, Lot, LotConsumption
from coalition.ledger.pending import confirm_due_lots
from tests import factories as f
from tests.factories import T0, TILL
from tests.ledger_helpers import events

pytestmark = pytest.mark.both_backends

WINDOW = timedelta(days=14)


def kinds_of(session, lot_id):
    return session.execute(
        select(LotConsumption.kind, LotConsumption.points)
        .where(LotConsumption.lot_id == lot_id)
        .order_by(LotConsumption.id)
    ).all()


def lots_of(session, member_id):
    account = select(Account.id).where(Account.member_id == member_id).scalar_subquery()
    return session.execute(
        select(Lot.id, Lot.source, Lot.points, Lot.remaining, Lot.confirmed_at)
        .where(Lot.account_id == account)
        .order_by(Lot.id)
    ).all()


def test_pending_points_are_in_the_balance_but_not_spendable_until_the_job_confirms_them(session):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 50)
    f.purchase(session, alice, shop, 40, welcome=100, pending_until=T0 + WINDOW)

    assert reads.balance(session, alice, T0) == {
        "balance": 190,
        "available": 50,
        "held": 0,
        "pending": 140,
        "debt": 0,
    }
    with pytest.raises(InsufficientPoints) as refused:
        f.redeem(session, alice, shop, 51)
    assert refused.value.extra["available"] == 50
    with pytest.raises(InsufficientPoints):
        holds.place_hold(session, member_id=alice, merchant_id=shop, points=51, now=T0)
    # What can be spent comes from the confirmed lot only: the pending ones stay whole.
    assert f.redeem(session, alice, shop, 50)["member"] == {
        "balance": 140,
        "available": 0,
        "debt": 0,
    }
    assert [(lot.points, lot.remaining) for lot in lots_of(session, alice)] == [
        (50, 0),
        (40, 40),
        (100, 100),
    ]

    # The window has not ended the day before: nothing to confirm.
    night = T0 + WINDOW + timedelta(hours=14)
    assert confirm_due_lots(session, cutoff=T0 + WINDOW - timedelta(seconds=1), now=night) == 0
    assert confirm_due_lots(session, cutoff=T0 + WINDOW, now=night) == 1
    # The job run twice confirms once.
    assert confirm_due_lots(session, cutoff=T0 + WINDOW, now=night + timedelta(hours=1)) == 0

    assert reads.balance(session, alice, night)["pending"] == 0
    assert reads.balance(session, alice, night)["available"] == 140
    [confirmed] = events(session, "points.confirmed")
    # The purchase's merchant hears of its purchase's points, the welcome bonus with them.
    assert confirmed["points"] == 140
    assert [p["points"] for p in confirmed["purchases"]] == [140]
    [_, merchant_lot, welcome_lot] = lots_of(session, alice)
    assert merchant_lot.confirmed_at is not None
    assert kinds_of(session, merchant_lot.id) == [("confirm", 40)]
    assert kinds_of(session, welcome_lot.id) == [("confirm", 100)]
    assert f.redeem(session, alice, shop, 140, now=night)["member"]["balance"] == 0


def test_a_refund_inside_the_window_cancels_pending_points_and_one_after_claws_back(session):
    shop, alice = f.merchant(session), f.member(session)
    bought = f.purchase(session, alice, shop, 100, welcome=50, pending_until=T0 + WINDOW)
    purchase_id = bought["transaction"]["id"]

    inside = operations.refund(
        session,
        purchase_id=purchase_id,
        merchant_id=shop,
        amount_minor=4000,
        actor=TILL,
        now=T0 + timedelta(days=3),
    )
    assert inside["transaction"]["points_clawed_back"] == 40
    # The pending points are cancelled: still pending, 40 fewer.
    assert reads.balance(session, alice, T0)["pending"] == 110
    merchant_lot, welcome_lot = lots_of(session, alice)
    assert kinds_of(session, merchant_lot.id) == [("cancel", 40)]

    night = T0 + WINDOW + timedelta(hours=14)
    assert confirm_due_lots(session, cutoff=T0 + WINDOW, now=night) == 1
    assert kinds_of(session, merchant_lot.id) == [("cancel", 40), ("confirm", 60)]
    assert kinds_of(session, welcome_lot.id) == [("confirm", 50)]

    after = operations.refund(
        session,
        purchase_id=purchase_id,
        merchant_id=shop,
        amount_minor=6000,
        actor=TILL,
        now=night + timedelta(days=1),
    )
    # The rest of the purchase, and (refunded in full) its welcome bonus: ordinary clawbacks.
    assert after["transaction"]["breakdown"] == {"merchant": 60, "welcome": 50}
    assert kinds_of(session, merchant_lot.id)[-1] == ("clawback", 60)
    assert kinds_of(session, welcome_lot.id)[-1] == ("clawback", 50)
    assert reads.balance(session, alice, night)["balance"] == 0


def test_a_purchase_refunded_in_full_inside_its_window_leaves_nothing_to_confirm(session):
    shop, alice = f.merchant(session), f.member(session)
    bought = f.purchase(session, alice, shop, 30, welcome=100, pending_until=T0 + WINDOW)
    operations.refund(
        session,
        purchase_id=bought["transaction"]["id"],
        merchant_id=shop,
        amount_minor=3000,
        actor=TILL,
        now=T0 + timedelta(days=1),
    )
    assert reads.balance(session, alice, T0)["balance"] == 0
    assert reads.balance(session, alice, T0)["pending"] == 0

    assert confirm_due_lots(session, cutoff=T0 + WINDOW, now=T0 + WINDOW) == 1
    for lot in lots_of(session, alice):
        assert [kind for kind, _ in kinds_of(session, lot.id)] == ["cancel"]
    assert events(session, "points.confirmed") == []
    assert confirm_due_lots(session, cutoff=T0 + WINDOW, now=T0 + WINDOW) == 0


def test_pending_points_repay_a_debt_only_once_confirmed(session):
    shop, other, alice = f.merchant(session), f.merchant(session, "Other"), f.member(session)
    first = f.purchase(session, alice, shop, 30)
    f.redeem(session, alice, other, 30)
    operations.refund(
        session,
        purchase_id=first["transaction"]["id"],
        merchant_id=shop,
        amount_minor=3000,
        actor=TILL,
        now=T0,
    )
    assert reads.balance(session, alice, T0)["debt"] == 30

    pending = f.purchase(session, alice, shop, 50, pending_until=T0 + WINDOW)
    assert pending["transaction"]["debt_repaid"] == 0
    assert reads.balance(session, alice, T0) == {
        "balance": 20,
        "available": 0,
        "held": 0,
        "pending": 50,
        "debt": 30,
    }

    assert confirm_due_lots(session, cutoff=T0 + WINDOW, now=T0 + WINDOW) == 1
    assert reads.balance(session, alice, T0 + WINDOW) == {
        "balance": 20,
        "available": 20,
        "held": 0,
        "pending": 0,
        "debt": 0,
    }
    [confirmed] = events(session, "points.confirmed")
    # The debt repaid is the member's business, not the merchant's (other shops' refunds).
    assert confirmed["points"] == 50 and "debt_repaid" not in confirmed
    [*_, lot] = lots_of(session, alice)
    assert kinds_of(session, lot.id) == [("confirm", 50), ("repay", 30)]


def test_verify_ledger_finds_pending_points_out_of_step_with_the_pending_lots(session):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 40, pending_until=T0 + WINDOW)
    assert verify.verify(session) == []

    session.execute(
        update(Account).where(Account.member_id == alice).values(pending=Account.pending - 10)
    )
    assert {v.check for v in verify.verify(session)} == {"pending"}
    session.execute(
        update(Account).where(Account.member_id == alice).values(pending=Account.pending + 10)
    )
    # A lot marked confirmed without its confirmation record.
    session.execute(update(Lot).values(confirmed_at=T0 + WINDOW))
    assert {v.check for v in verify.verify(session)} == {"pending", "confirmations"}
    session.execute(update(Lot).values(confirmed_at=None))
    assert verify.verify(session) == []


def test_points_written_off_inside_their_window_leave_nothing_pending_and_are_never_confirmed(
    session,
):
    """A member who erases itself while points are pending: they go to breakage with the rest,
    the account has nothing pending any more, and the nightly job later confirms none of them
    (no issuance is ever counted for them)."""
    from coalition.ledger.expiry import write_off
    from coalition.ledger.rows import Actor

    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 50)
    f.purchase(session, alice, shop, 40, pending_until=T0 + WINDOW)
    account = session.execute(select(Account.id).where(Account.member_id == alice)).scalar_one()

    written = write_off(
        session,
        account_id=account,
        now=T0 + timedelta(days=1),
        actor=Actor("job", "t"),
        reason="erasure",
    )

    assert written == 90
    assert reads.balance(session, alice, T0 + timedelta(days=1))["pending"] == 0
    night = T0 + WINDOW + timedelta(hours=14)
    confirm_due_lots(session, cutoff=T0 + WINDOW, now=night)
    pending_lot = lots_of(session, alice)[1]
    assert ("confirm", 40) not in kinds_of(session, pending_lot.id)
    assert verify.verify(session) == []
