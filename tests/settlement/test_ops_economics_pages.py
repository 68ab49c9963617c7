"""The console's economics page (SPEC 2, 3.9): the terms in force and the scheduled versions,
and a form that schedules a change through the API's own schema and service, refused alike,
and in the audit log. Support staff cannot open it."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from coalition import audit, clock
from settlement import business_days, economics
from tests.ops_helpers import csrf_token, sign_in_as


def _form(client: FlaskClient) -> dict[str, Any]:
    html = client.get("/ops/economics").get_data(as_text=True)
    fields = dict(re.findall(r'<input[^>]*name="([a-z_]+)"[^>]*value="([^"]*)"', html))
    fields["funding_model"] = "prefunded"
    return fields


def test_the_page_shows_the_terms_in_force_and_schedules_a_change(
    client: FlaskClient, session: Session
) -> None:
    staff = sign_in_as(client, session, "finance")
    page = client.get("/ops/economics").get_data(as_text=True)
    assert "0.0125" in page and "Platinum" in page
    assert "No change is scheduled" in page

    day = business_days.today(clock.utcnow()) + timedelta(days=3)
    form = _form(client)
    form.update(effective_from=day.isoformat(), issue_price="0.0130", welcome_bonus="150")
    done = client.post("/ops/economics", data=form)

    assert done.status_code == 303, done.get_data(as_text=True)
    after = client.get("/ops/economics").get_data(as_text=True)
    assert "The new terms take effect on" in after and day.isoformat() in after
    found = economics.read(session, day, None, clock.utcnow())["current"]
    assert (found["issue_price"], found["welcome_bonus"]) == ("0.0130", 150)
    [event] = audit.events(session, action="economics.schedule").rows
    assert event["actor_label"] == staff.email
    assert event["before"]["terms"]["issue_price"] == "0.0125"
    assert event["after"]["terms"]["issue_price"] == "0.0130"


def test_a_change_for_a_day_that_has_begun_or_a_bad_value_is_refused_at_its_field(
    client: FlaskClient, session: Session
) -> None:
    sign_in_as(client, session, "admin")
    today = business_days.today(clock.utcnow())
    form = _form(client)

    begun = client.post("/ops/economics", data={**form, "effective_from": today.isoformat()})
    negative = client.post(
        "/ops/economics",
        data={
            **form,
            "effective_from": (today + timedelta(days=2)).isoformat(),
            "operator_fee_rate": "-1",
        },
    )

    assert begun.status_code == 422 and "must be after" in begun.get_data(as_text=True)
    assert negative.status_code == 422
    assert 'id="operator_fee_rate-errors"' in negative.get_data(as_text=True)
    assert audit.events(session).rows == []


def test_support_cannot_open_economics(client: FlaskClient, session: Session) -> None:
    sign_in_as(client, session, "support")
    assert client.get("/ops/economics").status_code == 403
    token = csrf_token(client, "/ops/")
    assert client.post("/ops/economics", data={"csrf_token": token}).status_code == 403


def test_the_form_sets_the_premium_membership_and_refuses_a_multiplier_below_one(
    client: FlaskClient, session: Session
) -> None:
    sign_in_as(client, session, "admin")
    day = business_days.today(clock.utcnow()) + timedelta(days=4)
    form = _form(client)
    assert (form["premium_price_minor"], form["premium_multiplier"]) == ("2900", "1.5")

    form.update(effective_from=day.isoformat(), premium_multiplier="0.9")
    refused = client.post("/ops/economics", data=form)
    form.update(premium_price_minor="3500", premium_multiplier="2", premium_reminder_days="14")
    done = client.post("/ops/economics", data=form)

    assert refused.status_code == 422
    assert "must be at least 1 and at most 10" in refused.get_data(as_text=True)
    assert done.status_code == 303, done.get_data(as_text=True)
    found = economics.read(session, day, None, clock.utcnow())["current"]
    assert found["premium"] == {"price_minor": 3500, "multiplier": "2", "reminder_days": 14}
