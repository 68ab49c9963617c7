"""The console's fraud events (`/ops/fraud/events`) and the velocity limits on the economics
page: any staff sees the refused spendings with their figures; the limits are scheduled with
the terms. Nobody but staff opens the page."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from coalition import clock
from coalition.fraud import velocity
from settlement import business_days, economics
from tests import factories as f
from tests.ops_helpers import sign_in_as


def _refused(session: Session, merchant: int, member: int, asked: int) -> None:
    velocity.record(
        session,
        velocity.Refused(
            "merchant_velocity",
            member,
            merchant,
            {"limit_points": 250, "window_hours": 1, "spent_points": 200, "asked_points": asked},
        ),
        clock.utcnow(),
    )


def test_staff_see_the_fraud_events_newest_first(client: FlaskClient, session: Session) -> None:
    shop = f.merchant(session, "Bäckerei Süd")
    _refused(session, shop, f.member(session), 75)
    _refused(session, shop, f.member(session), 9999)
    sign_in_as(client, session, "support")

    page = client.get("/ops/fraud/events")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Merchant&#39;s hourly limit" in html or "Merchant's hourly limit" in html
    assert "Bäckerei Süd" in html
    assert html.index("9999") < html.index(">75<")
    assert 'href="/ops/fraud"' in html  # in the console's navigation


def test_with_no_event_the_page_says_what_will_appear(
    client: FlaskClient, session: Session
) -> None:
    sign_in_as(client, session, "finance")

    html = client.get("/ops/fraud/events").get_data(as_text=True)

    assert "No fraud event yet" in html


def test_a_signed_out_visitor_or_a_merchant_never_sees_fraud_events(
    client: FlaskClient, session: Session
) -> None:
    _refused(session, f.merchant(session, "Secret Shop"), f.member(session), 75)
    session.commit()

    answer = client.get("/ops/fraud/events")

    assert answer.status_code in (302, 303)
    assert "/ops/sign-in" in answer.headers["Location"]
    assert "Secret Shop" not in client.get("/portal/").get_data(as_text=True)


def _form(client: FlaskClient) -> dict[str, Any]:
    html = client.get("/ops/economics").get_data(as_text=True)
    fields = dict(re.findall(r'<input[^>]*name="([a-z_]+)"[^>]*value="([^"]*)"', html))
    fields["funding_model"] = "prefunded"
    return fields


def test_the_economics_page_schedules_velocity_limits(
    client: FlaskClient, session: Session
) -> None:
    sign_in_as(client, session, "admin")
    page = client.get("/ops/economics").get_data(as_text=True)
    assert "Member spending limit (points per 24 hours)" in page

    day = business_days.today(clock.utcnow()) + timedelta(days=3)
    form = _form(client)
    form.update(
        effective_from=day.isoformat(),
        member_daily_points_limit="5000",
        merchant_hourly_points_limit="",
    )
    done = client.post("/ops/economics", data=form)
    bad = client.post("/ops/economics", data=form | {"member_daily_points_limit": "0"})

    assert done.status_code == 303, done.get_data(as_text=True)
    found = economics.read(session, day, None, clock.utcnow())["current"]
    assert found["member_daily_points_limit"] == 5000
    assert found["merchant_hourly_points_limit"] is None
    assert bad.status_code == 422
