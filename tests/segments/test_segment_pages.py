"""The segment pages (issue 16 point 3): a merchant counts a definition over its own customers
without saving, saves it, sees it listed with its count, changes and deletes it in the portal;
staff do the same coalition-wide in the console, audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import audit, clock
from coalition.members import attributes
from coalition.privacy import services as privacy
from coalition.segments.models import segments
from tests import factories as f
from tests.merchants.test_portal_pages import _merchant, _sign_in, _text, _token
from tests.ops_helpers import csrf_token, sign_in_as

pytestmark = pytest.mark.both_backends


def _shopper(session: Session, shop: int, points: int, *, consent: bool = True) -> int:
    member_id = f.member(session)
    f.purchase(session, member_id, shop, points, now=clock.utcnow() - timedelta(days=2))
    if consent:
        privacy.set_consents(
            session, member_id, {"profiling": True}, source=privacy.ME, now=clock.utcnow()
        )
    return member_id


def test_a_merchant_counts_saves_changes_and_deletes_a_segment_in_the_portal(
    client: FlaskClient, session: Session
) -> None:
    shop = _merchant(session, "shop@example.org")
    _shopper(session, shop, 80)
    _shopper(session, shop, 10)
    _shopper(session, shop, 90, consent=False)
    other = f.merchant(session, "Elsewhere")
    _shopper(session, other, 99)
    _sign_in(client, "shop@example.org")
    fields = {"name": "Big spenders", "spend_days": "30", "spend_unit": "money", "spend_min": "50"}

    counted = client.post(
        "/portal/segments",
        data={**fields, "action": "count", "csrf_token": _token(client, "/portal/segments")},
    )
    nothing_saved = session.execute(select(segments.c.id)).all()
    saved = client.post(
        "/portal/segments",
        data={**fields, "action": "save", "csrf_token": _token(client, "/portal/segments")},
    )
    listed = client.get("/portal/segments").get_data(as_text=True)
    segment_id = session.execute(select(segments.c.public_id)).scalar_one()
    changed = client.post(
        f"/portal/segments/{segment_id}",
        data={
            "name": "Everyone",
            "action": "save",
            "csrf_token": _token(client, f"/portal/segments/{segment_id}"),
        },
    )
    relisted = _text(client.get("/portal/segments").get_data(as_text=True))
    refused = client.post(
        "/portal/segments",
        data={
            "name": "Odd",
            "age_min": "60",
            "age_max": "20",
            "action": "save",
            "csrf_token": _token(client, "/portal/segments"),
        },
    )
    deleted = client.post(
        f"/portal/segments/{segment_id}/delete",
        data={"csrf_token": _token(client, "/portal/segments")},
    )

    assert counted.status_code == 200
    assert "1 members match now." in _text(counted.get_data(as_text=True))
    assert nothing_saved == []
    assert saved.status_code == 303
    assert "Big spenders" in listed
    assert "spend: days 30, unit money, min 50 EUR" in _text(listed)
    assert changed.status_code == 303
    assert "Everyone Every consenting member 2" in relisted
    assert refused.status_code == 422
    assert "age min: must not exceed max" in _text(refused.get_data(as_text=True))
    assert deleted.status_code == 303
    assert "No segments yet." in client.get("/portal/segments").get_data(as_text=True)


def test_staff_define_a_coalition_wide_segment_in_the_console_audited(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session, "Bakery")
    north = _shopper(session, shop, 10)
    attributes.set_attributes(
        session, north, {"region": "north"}, now=clock.utcnow(), today=clock.utcnow().date()
    )
    _shopper(session, shop, 10)
    made = sign_in_as(client, session, "support")

    saved = client.post(
        "/ops/segments",
        data={
            "name": "The north",
            "regions": ["north"],
            "action": "save",
            "csrf_token": csrf_token(client, "/ops/segments"),
        },
    )
    page = _text(client.get("/ops/segments").get_data(as_text=True))

    assert saved.status_code == 303
    assert "The north regions: north 1" in page
    [event] = audit.events(session, action="segment.created").rows
    assert (event["actor_kind"], event["actor_id"]) == ("staff", str(made.id))
