"""`member.created` (SPEC 3.6, issue 13 point 10): every way a member joins writes one event in
the outbox, in the same transaction; the enrolling merchant hears of its own new member, an
online sign-up is the coalition's alone, and a refused enrolment writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition.database import table
from coalition.members.models import Member
from coalition.outbox import OutboxEvent
from tests import factories as f
from tests.coalition.test_me_pages import _join

events = table(OutboxEvent)
members = table(Member)


def _created(session: Session) -> list[Any]:
    return list(
        session.execute(
            select(events.c.merchant_id, events.c.member_id, events.c.data)
            .where(events.c.type == "member.created")
            .order_by(events.c.id)
        ).all()
    )


def _id_of(session: Session, public_id: str) -> int:
    return session.execute(
        select(members.c.id).where(members.c.public_id == public_id)
    ).scalar_one()


@pytest.mark.both_backends
def test_a_member_enrolled_at_a_till_is_told_to_the_enrolling_merchant_only(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session, "Bakery")
    headers = f.merchant_headers(session, shop, "members:write")

    enrolled = client.post("/api/v1/members", json={"email": "cleo@example.org"}, headers=headers)
    again = client.post("/api/v1/members", json={"email": "cleo@example.org"}, headers=headers)

    assert (enrolled.status_code, again.status_code) == (201, 409)
    [event] = _created(session)
    member_id = _id_of(session, enrolled.json["id"])
    assert (event.merchant_id, event.member_id) == (shop, member_id)
    assert event.data["member"]["id"] == enrolled.json["id"]
    # No contact details travel in events (erasure must find none there).
    assert "cleo" not in str(event.data)


@pytest.mark.both_backends
def test_an_online_sign_up_is_the_coalitions_event(client: FlaskClient, session: Session) -> None:
    signed_up = client.post(
        "/api/v1/member-signups",
        json={"email": "ada@example.org", "password": "correct horse battery"},
    )

    assert signed_up.status_code == 201
    [event] = _created(session)
    assert (event.merchant_id, event.member_id) == (None, _id_of(session, signed_up.json["id"]))


@pytest.mark.both_backends
def test_joining_on_the_member_site_writes_member_created(
    client: FlaskClient, session: Session
) -> None:
    assert _join(client, "dora@example.org").status_code == 303

    [event] = _created(session)
    member_id = session.execute(
        select(members.c.id).where(members.c.email == "dora@example.org")
    ).scalar_one()
    assert (event.merchant_id, event.member_id) == (None, member_id)
