"""Velocity limits under concurrent spending, over HTTP on PostgreSQL: tills or apps at once,
each request in its own thread, connection and transaction. Spendings that jointly pass a limit
never all get through: a member's serialise on its account, members' at one merchant on the
merchant's advisory lock."""

from __future__ import annotations

from collections import Counter

from coalition import clock, economics
from coalition.extensions import db
from tests import factories as f
from tests.merchants.test_redemption_race import arrange, race, transactions_of_type


def _limits(app, **limits: int) -> None:
    with app.app_context():
        session = db.session()
        terms = economics.coalition_terms(session, clock.utcnow().date()).to_json()
        economics.set_version(
            session,
            effective_from=economics.BEGINNING,
            settings=terms | limits,
            merchant_id=None,
            actor_id="test",
            now=clock.utcnow(),
        )
        session.commit()


def test_ten_members_at_once_at_one_merchant_spend_no_more_than_its_hourly_limit(
    committed, make_app
):
    world = arrange(committed, 100, members=10)
    with committed.app_context():
        session = db.session()
        apps = [f.member_headers(session, world["shop"], m) for m in world["members"]]
        session.commit()
    _limits(committed, merchant_hourly_points_limit=250)
    live = make_app()

    answers = race(
        live,
        10,
        lambda client, n: client.post(
            "/api/v1/redemptions", json={"points": 30, "external_id": f"app-{n}"}, headers=apps[n]
        ),
    )

    outcomes = Counter("spent" if status == 201 else body["code"] for status, body, _ in answers)
    assert outcomes == {"spent": 8, "velocity_limit_exceeded": 2}
    assert transactions_of_type(committed, "redeem") == 8


def test_one_member_spending_from_ten_apps_at_once_stays_under_its_daily_limit(committed, make_app):
    world = arrange(committed, 1000)
    _limits(committed, member_daily_points_limit=100)
    live = make_app()

    answers = race(
        live,
        10,
        lambda client, n: client.post(
            "/api/v1/redemptions",
            json={"points": 30, "external_id": f"app-{n}"},
            headers=world["app"],
        ),
    )

    outcomes = Counter("spent" if status == 201 else body["code"] for status, body, _ in answers)
    assert outcomes == {"spent": 3, "velocity_limit_exceeded": 7}
