"""The nightly cancel (SPEC 2): an order not fulfilled within its supplier's promised days is
cancelled and its points go back to the very lots they came from; a fulfilled order, or one
still within its days, is left alone, and running the job again changes nothing."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coalition.outbox import outbox_events
from rewards import services
from rewards.models import orders, rewards
from rewards.tasks import cancel_overdue_orders
from tests import factories
from tests.ledger_helpers import lots_of
from tests.rewards.helpers import member_with, reward


def _order(session: Session, member: int, reward_id: str) -> str:
    return services.place_order(
        session, member_id=member, reward_id=reward_id, quantity=1, now=factories.T0
    ).id


def _statuses(session: Session) -> dict[str, tuple[str, str | None]]:
    rows = session.execute(select(orders.c.public_id, orders.c.status, orders.c.cancelled_by))
    return {row.public_id: (row.status, row.cancelled_by) for row in rows}


def test_overdue_orders_are_cancelled_once_with_their_points_back_in_their_lots(
    app: Flask, session: Session
) -> None:
    shop = factories.merchant(session, "Cafe")
    quick = reward(session, shop, fulfilment_days=3, stock=4, points=100)
    slow = reward(session, shop, fulfilment_days=14, points=100)
    voucher = reward(session, shop, kind="voucher", fulfilment_days=3, points=100)
    late, patient, done = (member_with(session, shop, 500) for _ in range(3))
    lots_before = lots_of(session, late)
    overdue = _order(session, late, quick)
    overdue_voucher = _order(session, late, voucher)
    waiting = _order(session, patient, slow)
    fulfilled = _order(session, done, quick)
    services.fulfil_order(session, shop, fulfilled, factories.T0 + timedelta(days=1))
    assert "cancel-overdue-orders" in app.extensions["coalition.daily_jobs"]

    day = (factories.T0 + timedelta(days=4)).date()
    cancel_overdue_orders(day, factories.T0 + timedelta(days=5))

    assert _statuses(session) == {
        overdue: ("cancelled", "expiry"),
        overdue_voucher: ("cancelled", "expiry"),
        waiting: ("pending", None),
        fulfilled: ("fulfilled", None),
    }
    assert lots_of(session, late) == lots_before
    assert (
        session.execute(select(rewards.c.stock).where(rewards.c.stock.is_not(None))).scalar() == 3
    )
    cancelled_events = select(func.count()).where(outbox_events.c.type == "order.cancelled")
    assert session.execute(cancelled_events).scalar_one() == 2

    cancel_overdue_orders(day, factories.T0 + timedelta(days=6))  # a rerun

    assert session.execute(cancelled_events).scalar_one() == 2
    assert _statuses(session)[waiting] == ("pending", None)
