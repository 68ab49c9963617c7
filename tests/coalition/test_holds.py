"""Holds (`coalition.ledger.holds`): points reserved for a later capture, captured or voided."""

from __future__ import annotations

from datetime import timedelta

import pytest

from coalition.errors import HoldNotActive, InsufficientPoints, InvalidRequest
from coalition.ledger import holds, reads
from tests import factories as f
from tests.factories import T0, TILL
from tests.ledger_helpers import events

pytestmark = pytest.mark.both_backends


def test_a_hold_reserves_points_and_a_capture_spends_them(session):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 100)

    held = holds.place_hold(session, member_id=alice, merchant_id=shop, points=70, now=T0)
    assert held["member"] == {"balance": 100, "available": 30, "debt": 0}
    with pytest.raises(InsufficientPoints):
        f.redeem(session, alice, shop, 31)

    captured = holds.capture_hold(
        session,
        hold_id=held["hold"]["id"],
        merchant_id=shop,
        points=50,
        actor=TILL,
        now=T0 + timedelta(minutes=5),
    )
    assert captured["transaction"]["points"] == 50
    assert captured["member"] == {"balance": 50, "available": 50, "debt": 0}
    with pytest.raises(HoldNotActive):
        holds.capture_hold(
            session, hold_id=held["hold"]["id"], merchant_id=shop, actor=TILL, now=T0
        )
    assert len(events(session, "hold.captured")) == 1


def test_a_voided_hold_releases_its_points(session):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 100)
    held = holds.place_hold(session, member_id=alice, merchant_id=shop, points=100, now=T0)

    voided = holds.void_hold(session, hold_id=held["hold"]["id"], merchant_id=shop, now=T0)

    assert voided["member"]["available"] == 100
    assert events(session, "hold.voided")[0]["hold"]["id"] == held["hold"]["id"]


def test_a_hold_expires_after_fifteen_minutes_unless_asked_for_longer(session):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 100)
    short = holds.place_hold(session, member_id=alice, merchant_id=shop, points=60, now=T0)
    long = holds.place_hold(
        session, member_id=alice, merchant_id=shop, points=40, now=T0, ttl=timedelta(days=7)
    )

    later = T0 + timedelta(minutes=15)
    assert reads.balance(session, alice, later)["available"] == 60
    with pytest.raises(HoldNotActive) as expired:
        holds.capture_hold(
            session, hold_id=short["hold"]["id"], merchant_id=shop, actor=TILL, now=later
        )
    assert expired.value.extra["status_now"] == "expired"
    holds.capture_hold(
        session,
        hold_id=long["hold"]["id"],
        merchant_id=shop,
        actor=TILL,
        now=T0 + timedelta(days=6),
    )
    with pytest.raises(InvalidRequest):
        holds.place_hold(
            session,
            member_id=alice,
            merchant_id=shop,
            points=1,
            now=T0,
            ttl=timedelta(days=7, seconds=1),
        )
