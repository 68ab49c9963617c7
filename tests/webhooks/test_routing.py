"""Who hears each event (SPEC 3.6, docs/events.md): a merchant hears only of its own
transactions, its own members' activity at its shops and its own statements; it never learns of
a member's activity at another shop. Alice shops at A and at B; C only sees her once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from coalition import tenancy
from coalition.ledger import expiry, holds, operations, pending
from coalition.ledger.rows import Actor
from coalition.members import services
from coalition.outbox import outbox_events
from coalition.privacy import services as privacy
from settlement import runs, statements
from tests import factories as f
from tests.factories import T0

pytestmark = pytest.mark.both_backends

JOB = Actor("job", "test")
WINDOW = timedelta(days=14)


def heard(session, since: int = 0) -> list[tuple[str, int | None, dict[str, Any]]]:
    """Every event written after id `since`: (type, merchant heard by, data)."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return [
            (row.type, row.merchant_id, row.data)
            for row in session.execute(
                select(outbox_events.c.type, outbox_events.c.merchant_id, outbox_events.c.data)
                .where(outbox_events.c.id > since)
                .order_by(outbox_events.c.id)
            )
        ]


def last_id(session) -> int:
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return int(
            session.execute(
                select(outbox_events.c.id).order_by(outbox_events.c.id.desc()).limit(1)
            ).scalar()
            or 0
        )


@pytest.fixture
def shops(session) -> dict[str, int]:
    return {name: f.merchant(session, name) for name in ("A", "B", "C")}


def test_transactions_are_heard_by_their_merchant_alone(session, shops):
    a, b = shops["A"], shops["B"]
    alice = f.member(session)
    start = last_id(session)
    bought = f.purchase(session, alice, a, 100, welcome=50)
    f.purchase(session, alice, b, 100)
    operations.refund(
        session,
        purchase_id=bought["transaction"]["id"],
        merchant_id=a,
        amount_minor=1000,
        actor=f.TILL,
        now=T0,
    )
    spent = f.redeem(session, alice, a, 10)
    operations.reverse_redemption(
        session, redemption_id=spent["transaction"]["id"], merchant_id=a, actor=f.TILL, now=T0
    )
    held = holds.place_hold(session, member_id=alice, merchant_id=a, points=5, now=T0)
    holds.capture_hold(session, hold_id=held["hold"]["id"], merchant_id=a, actor=f.TILL, now=T0)
    held = holds.place_hold(session, member_id=alice, merchant_id=a, points=5, now=T0)
    holds.void_hold(session, hold_id=held["hold"]["id"], merchant_id=a, now=T0)

    events = heard(session, start)
    assert [(kind, who) for kind, who, _ in events] == [
        ("purchase.created", a),
        ("purchase.created", b),
        ("purchase.refunded", a),
        ("redemption.created", a),
        ("redemption.reversed", a),
        ("hold.captured", a),
        ("hold.voided", a),
    ]


def test_points_expiring_and_expired_are_heard_by_each_issuer_of_its_own_lots(session, shops):
    a, b = shops["A"], shops["B"]
    alice = f.member(session)
    soon = T0 + timedelta(days=10)
    at_a = f.purchase(session, alice, a, 40, welcome=100, expires_at=soon)
    at_b = f.purchase(session, alice, b, 60, expires_at=soon)
    start = last_id(session)

    expiry.notify_expiring(session, horizon=T0 + timedelta(days=30), now=T0)
    expiry.expire_due_lots(session, cutoff=soon, now=soon, actor=JOB)

    events = heard(session, start)
    for kind in ("points.expiring", "points.expired"):
        told = {who: data for k, who, data in events if k == kind}
        # One per issuer: A of its 40, B of its 60, the coalition of its welcome bonus.
        assert {who: data["points"] for who, data in told.items()} == {a: 40, b: 60, None: 100}
        assert set(told[a]) == {"member", "points", "expires_at", kind.split(".")[1]}
    # B hears nothing of A's purchase, nor of the member's expiry transaction.
    b_heard = json.dumps([data for _, who, data in events if who == b])
    assert at_a["transaction"]["id"] not in b_heard and "txn_" not in b_heard
    assert at_b["transaction"]["id"] not in json.dumps(
        [data for _, who, data in events if who == a]
    )


def test_points_confirmed_are_heard_by_the_merchant_of_each_pending_purchase(session, shops):
    a, b = shops["A"], shops["B"]
    alice = f.member(session)
    at_a = f.purchase(session, alice, a, 40, welcome=100, pending_until=T0 + WINDOW)
    at_b = f.purchase(session, alice, b, 60, pending_until=T0 + WINDOW)
    start = last_id(session)

    assert pending.confirm_due_lots(session, cutoff=T0 + WINDOW, now=T0 + WINDOW) == 1

    told = {who: data for kind, who, data in heard(session, start) if kind == "points.confirmed"}
    assert set(told) == {a, b}
    assert told[a]["purchases"] == [{"id": at_a["transaction"]["id"], "points": 140}]
    assert told[b]["purchases"] == [{"id": at_b["transaction"]["id"], "points": 60}]
    assert told[a]["points"] == 140 and told[b]["points"] == 60


def test_members_events_go_to_the_enrolling_shop_and_the_shops_where_it_earned(session, shops):
    a, b, c = shops["A"], shops["B"], shops["C"]
    start = last_id(session)
    at_till = services.register_member(
        session, now=T0, card_prefix="6280", enrolled_by_merchant_id=a
    )
    online = services.register_member(session, now=T0, card_prefix="6280")
    f.purchase(session, at_till.id, a, 10)
    f.purchase(session, at_till.id, b, 10)
    f.redeem(session, at_till.id, c, 5)  # redeeming at C does not make C its shop
    privacy.erase(session, at_till.id, source=privacy.Source("me"), now=T0)

    events = heard(session, start)
    created = [(who, data["member"]["id"]) for k, who, data in events if k == "member.created"]
    assert created == [(a, at_till.public_id), (None, online.public_id)]
    erased = [who for k, who, _ in events if k == "member.erased"]
    assert erased == sorted([a, b])
    # The written-off points are told to each issuer, of its own lots only.
    expired = {who: data["points"] for k, who, data in events if k == "points.expired"}
    assert set(expired) == {a, b}


def test_no_merchant_hears_of_another_shops_transactions(session, shops):
    """Whatever happened, an event a merchant hears names none of another merchant's
    transactions or holds."""
    a, b = shops["A"], shops["B"]
    alice = f.member(session)
    mine: dict[int, set[str]] = {a: set(), b: set()}
    for shop in (a, b):
        mine[shop].add(
            f.purchase(
                session,
                alice,
                shop,
                100,
                expires_at=T0 + timedelta(days=5),
                pending_until=T0 + timedelta(days=1),
            )["transaction"]["id"]
        )
    pending.confirm_due_lots(session, cutoff=T0 + timedelta(days=1), now=T0 + timedelta(days=1))
    for shop in (a, b):
        mine[shop].add(
            f.redeem(session, alice, shop, 10, now=T0 + timedelta(days=2))["transaction"]["id"]
        )
    expiry.notify_expiring(session, horizon=T0 + timedelta(days=30), now=T0 + timedelta(days=2))
    expiry.expire_due_lots(
        session, cutoff=T0 + timedelta(days=5), now=T0 + timedelta(days=5), actor=JOB
    )

    for kind, who, data in heard(session):
        assert who in (a, b, None), kind
        if who is not None:
            other = b if who == a else a
            assert not any(txn in json.dumps(data) for txn in mine[other]), (kind, data)


def test_a_statement_is_heard_by_its_merchant_alone(session, shops):
    a, b = shops["A"], shops["B"]
    alice = f.member(session)
    october = datetime(2026, 10, 5, 10, tzinfo=UTC)
    f.purchase(session, alice, a, 100, now=october)
    f.redeem(session, alice, b, 50, now=october + timedelta(days=1))
    start = last_id(session)
    first, last = statements.parse_month("2026-10")
    now = datetime(2026, 11, 1, 3, tzinfo=UTC)
    for day in runs.unsettled_days(session, first, last):
        runs.settle(session, day, now)

    stated = statements.issue_month(session, "2026-10", now)

    told = {who: data for kind, who, data in heard(session, start) if kind == "statement.issued"}
    assert set(told) == {row.merchant_id for row in stated} == {a, b}
    for row in stated:
        # A subset of what `GET /api/v1/statements/{id}` shows, with the id to fetch the rest.
        shown = statements.statement_view(session, row.public_id, row.merchant_id)
        assert told[row.merchant_id]["statement"] == {
            key: shown[key] for key in ("id", "month", "closing")
        }
