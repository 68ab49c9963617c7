"""Expiry notices (SPEC 2, issue 13 point 5) travelling in time with the daily job: a member
hears of a lot 30 days before it expires, not 31, once, never of points already spent, and a
job that missed days catches up with one notice. Each issuing merchant hears of its own points;
the coalition's welcome points name no merchant. `/me` says up front what expires soonest."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import clock
from coalition.database import table
from coalition.jobs import run_daily_jobs
from coalition.outbox import OutboxEvent
from tests import factories as f
from tests.coalition.test_me_pages import _registered, _sign_in, _text

pytestmark = pytest.mark.both_backends

events = table(OutboxEvent)
ZONE = "Europe/Berlin"  # the test settings' COALITION_TIMEZONE
EXPIRY_DAY = date(2026, 9, 15)
# Midday on the expiry day, in the coalition's zone.
EXPIRES_AT = clock.end_of_business_date(EXPIRY_DAY, ZONE) - timedelta(hours=12)


def _morning(days_before: int) -> datetime:
    """07:00 in the coalition's zone, `days_before` days before the expiry day."""
    day = EXPIRY_DAY - timedelta(days=days_before)
    return clock.end_of_business_date(day - timedelta(days=1), ZONE) + timedelta(hours=7)


def _run(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> list[str]:
    monkeypatch.setattr(clock, "utcnow", lambda: moment)
    return run_daily_jobs(now=moment.isoformat())["expire-points"]


def _notices(session: Session) -> list[Any]:
    session.commit()
    return list(
        session.execute(
            select(events.c.merchant_id, events.c.member_id, events.c.data, events.c.created_at)
            .where(events.c.type == "points.expiring")
            .order_by(events.c.id)
        ).all()
    )


def test_a_lot_is_told_of_30_days_ahead_not_31_and_only_once(
    monkeypatch: pytest.MonkeyPatch, session: Session
) -> None:
    shop, alice = f.merchant(session, "Bakery"), f.member(session)
    f.purchase(session, alice, shop, 120, expires_at=EXPIRES_AT)
    session.commit()

    assert _run(monkeypatch, _morning(31)) == [(EXPIRY_DAY - timedelta(days=32)).isoformat()]
    assert _notices(session) == []

    _run(monkeypatch, _morning(30))
    [notice] = _notices(session)
    assert (notice.merchant_id, notice.member_id) == (shop, alice)
    assert notice.data["points"] == 120
    assert notice.data["expires_at"] == EXPIRES_AT.isoformat()
    assert notice.data["expiring"] == [{"points": 120, "expires_at": EXPIRES_AT.isoformat()}]
    assert notice.created_at == _morning(30)

    _run(monkeypatch, _morning(30) + timedelta(hours=2))  # the same day again: nothing to do
    _run(monkeypatch, _morning(29))
    _run(monkeypatch, _morning(1))
    assert len(_notices(session)) == 1


def test_points_spent_before_the_notice_are_not_told_of(
    monkeypatch: pytest.MonkeyPatch, session: Session
) -> None:
    shop, alice = f.merchant(session, "Bakery"), f.member(session)
    f.purchase(session, alice, shop, 100, expires_at=EXPIRES_AT)
    f.purchase(session, alice, shop, 50, expires_at=EXPIRES_AT + timedelta(hours=1))
    f.purchase(session, alice, shop, 70, expires_at=EXPIRES_AT + timedelta(days=200))
    # Soonest-expiring first: the whole first lot and 20 of the second.
    f.redeem(session, alice, shop, 120)
    session.commit()

    _run(monkeypatch, _morning(30))

    [notice] = _notices(session)
    assert notice.data["points"] == 30
    assert [lot["points"] for lot in notice.data["expiring"]] == [30]


def test_a_member_whose_expiring_points_are_all_spent_hears_nothing(
    monkeypatch: pytest.MonkeyPatch, session: Session
) -> None:
    shop, alice = f.merchant(session, "Bakery"), f.member(session)
    f.purchase(session, alice, shop, 100, expires_at=EXPIRES_AT)
    f.redeem(session, alice, shop, 100)
    session.commit()

    _run(monkeypatch, _morning(30))

    assert _notices(session) == []


def test_a_job_that_missed_days_catches_up_telling_of_each_lot_once(
    monkeypatch: pytest.MonkeyPatch, session: Session
) -> None:
    shop, alice = f.merchant(session, "Bakery"), f.member(session)
    f.purchase(session, alice, shop, 10, expires_at=EXPIRES_AT - timedelta(days=5))
    f.purchase(session, alice, shop, 20, expires_at=EXPIRES_AT)
    f.purchase(session, alice, shop, 40, expires_at=EXPIRES_AT + timedelta(days=40))
    session.commit()
    _run(monkeypatch, _morning(45))  # nothing within 30 days yet

    # The scheduler was down for three weeks: one run does every day missed.
    done = _run(monkeypatch, _morning(24))

    assert len(done) == 21
    # Each missed day told of what was then 30 days ahead: every lot in exactly one notice.
    told = [lot["points"] for n in _notices(session) for lot in n.data["expiring"]]
    assert sorted(told) == [10, 20]
    _run(monkeypatch, _morning(23))
    assert len(_notices(session)) == 2


def test_each_issuer_hears_of_its_own_points_and_the_welcome_bonus_names_no_merchant(
    monkeypatch: pytest.MonkeyPatch, session: Session
) -> None:
    bakery, pharmacy = f.merchant(session, "Bakery"), f.merchant(session, "Pharmacy")
    alice, bob = f.member(session), f.member(session)
    f.purchase(session, alice, bakery, 30, welcome=100, expires_at=EXPIRES_AT)
    f.purchase(session, alice, pharmacy, 45, expires_at=EXPIRES_AT - timedelta(days=2))
    f.purchase(session, bob, pharmacy, 5, expires_at=EXPIRES_AT)
    session.commit()

    _run(monkeypatch, _morning(30))

    told = {(n.member_id, n.merchant_id): n.data["points"] for n in _notices(session)}
    assert told == {
        (alice, None): 100,
        (alice, bakery): 30,
        (alice, pharmacy): 45,
        (bob, pharmacy): 5,
    }


def test_the_member_site_says_up_front_what_expires_within_30_days(
    monkeypatch: pytest.MonkeyPatch, client: FlaskClient, session: Session
) -> None:
    member_id = _registered(session, "soon@example.org")
    shop = f.merchant(session, "Bakery")
    f.purchase(session, member_id, shop, 120, expires_at=EXPIRES_AT)
    f.purchase(session, member_id, shop, 1, expires_at=EXPIRES_AT + timedelta(days=300))
    session.commit()
    _sign_in(client, "soon@example.org")

    monkeypatch.setattr(clock, "utcnow", lambda: _morning(31))
    far = _text(client.get("/me/").get_data(as_text=True))
    monkeypatch.setattr(clock, "utcnow", lambda: _morning(29))
    near = _text(client.get("/me/").get_data(as_text=True))

    assert "expire on" not in far
    assert "120 points expire on September 15. Spend them at any partner shop" in near
