"""The portal's targeted campaigns: the earn-rules page lists the campaigns in force with their
targeting and pilot, a form adds one field by field (refused with the schema's errors, nothing
written), and a targeted campaign's report page shows its targeted and control groups."""

from __future__ import annotations

from datetime import timedelta
from html import unescape

from flask.testing import FlaskClient
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from coalition import clock
from coalition.members.models import Member, MemberAttributes
from coalition.privacy.models import Consent
from coalition.segments.models import segment_members, segments
from merchants import rules, targeting
from merchants.models import EarnRulesVersion
from tests import factories as f
from tests.merchants.test_portal_pages import _merchant, _post, _sign_in, _text

PAGE = "/portal/earn-rules"
SAVE = "/portal/earn-rules/campaigns"


def _segment(session: Session, merchant_id: int | None, public_id: str, name: str) -> None:
    now = clock.utcnow()
    session.execute(
        insert(segments).values(
            public_id=public_id,
            merchant_id=merchant_id,
            name=name,
            definition={},
            created_at=now,
            updated_at=now,
        )
    )


def _fields(**extra: object) -> dict[str, object]:
    start = clock.utcnow().replace(second=0, microsecond=0) - timedelta(days=1)
    return {
        "name": "Regulars week",
        "multiplier": "2",
        "starts_at": start.strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (start + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M"),
        "kind": "standard",
        "lapsed_days": "",
        "segment": "seg_regulars",
        "regions": "North, East",
        "categories": "",
        "stores": "Main St, Mall",
        "pilot_stores": "Main St",
        "pilot_until": (start + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"),
        "control_percent": "10",
        **extra,
    }


def _versions(session: Session) -> int:
    return session.execute(select(func.count()).select_from(EarnRulesVersion)).scalar_one()


def test_a_merchant_adds_a_targeted_pilot_campaign_and_sees_it_and_its_report(
    client: FlaskClient, session: Session
) -> None:
    shop = _merchant(session, "shop@example.org")
    _segment(session, shop, "seg_regulars", "Regulars")
    ids = [f.member(session) for _ in range(6)]
    for member_id in ids:
        session.execute(
            insert(segment_members).values(
                segment_id=select(segments.c.id)
                .where(segments.c.public_id == "seg_regulars")
                .scalar_subquery(),
                member_id=member_id,
            )
        )
        session.execute(
            insert(MemberAttributes).values(
                member_id=member_id, region="North", updated_at=clock.utcnow()
            )
        )
        session.execute(
            insert(Consent).values(
                member_id=member_id,
                purpose="profiling",
                granted=True,
                text_version="1",
                source="me",
                created_at=clock.utcnow(),
            )
        )
    held = [m for m in ids if targeting.held_out(shop, "Regulars week", m, 50)]
    reached = [m for m in ids if m not in held]
    till = f.merchant_headers(session, shop)
    _sign_in(client, "shop@example.org")

    form = _text(client.get(PAGE).get_data(as_text=True))
    saved = _post(client, PAGE, SAVE, **_fields(control_percent="50"))

    assert "Add a campaign" in form and "Regulars" in form
    assert saved.status_code == 303, _text(saved.get_data(as_text=True))
    campaign = rules.in_force_at(session, shop, clock.utcnow()).document["campaigns"][0]
    assert campaign["segment"] == "seg_regulars"
    assert campaign["regions"] == ["North", "East"]
    assert campaign["stores"] == ["Main St", "Mall"]
    assert campaign["pilot"]["stores"] == ["Main St"]
    assert campaign["control_percent"] == 50
    page = client.get(PAGE).get_data(as_text=True)
    text = _text(page)
    assert "Segment: Regulars" in text
    assert "Regions: North, East" in text
    assert "Pilot at Main St until" in text and "then Main St, Mall" in text
    assert 'href="/portal/earn-rules/campaigns/Regulars%20week"' in page

    # One reached member (of the segment, in the North) buys 12.00 at the pilot's store: 12
    # base and 12 campaign points, and the welcome bonus.
    card = session.execute(select(Member.card_number).where(Member.id == reached[0])).scalar_one()
    bought = client.post(
        "/api/v1/purchases",
        json={
            "member": card,
            "amount": 1200,
            "currency": "EUR",
            "external_id": "r-1",
            "store": "Main St",
        },
        headers=till,
    )
    assert bought.status_code == 201, bought.get_json()
    points = bought.get_json()["transaction"]["points"]
    assert bought.get_json()["transaction"]["breakdown"]["campaign"] == 12

    report = client.get("/portal/earn-rules/campaigns/Regulars%20week")

    assert report.status_code == 200
    shown = _text(report.get_data(as_text=True))
    assert "Campaign Regulars week: targeted against control" in shown
    assert f"Targeted {len(reached)} 1 1 €12.00 €12.00 {points}" in shown
    assert f"Control {len(held)} 0 0 €0.00 — 0" in shown
    assert "Uplift" in shown


def test_bad_campaign_fields_are_refused_and_nothing_is_written(
    client: FlaskClient, session: Session
) -> None:
    shop = _merchant(session, "shop@example.org")
    _segment(session, shop, "seg_regulars", "Regulars")
    _segment(session, f.merchant(session, "Other"), "seg_theirs", "Theirs")
    _sign_in(client, "shop@example.org")
    before = _versions(session)

    too_many = _post(client, PAGE, SAVE, **_fields(control_percent="60"))
    theirs = _post(client, PAGE, SAVE, **_fields(segment="seg_theirs"))
    pilot_elsewhere = _post(client, PAGE, SAVE, **_fields(pilot_stores="Station"))
    no_lapse = _post(client, PAGE, SAVE, **_fields(kind="win_back", segment=""))

    assert too_many.status_code == 422
    assert "Number must be between 0 and 50." in _text(too_many.get_data(as_text=True))
    assert theirs.status_code == 422
    assert "Not a valid choice" in _text(theirs.get_data(as_text=True))
    assert pilot_elsewhere.status_code == 422
    assert "the pilot's stores must be among the campaign's" in unescape(
        _text(pilot_elsewhere.get_data(as_text=True))
    )
    assert no_lapse.status_code == 422
    assert "a win_back campaign needs lapsed_days" in _text(no_lapse.get_data(as_text=True))
    assert _versions(session) == before


def test_another_merchants_campaign_report_is_not_found(
    client: FlaskClient, session: Session
) -> None:
    other = f.merchant(session, "Other")
    _segment(session, other, "seg_theirs", "Theirs")
    rules.put(
        session,
        merchant_id=other,
        document={
            "base_rate": "1",
            "campaigns": [
                {
                    "name": "Theirs",
                    "multiplier": "2",
                    "starts_at": clock.utcnow() - timedelta(days=1),
                    "ends_at": clock.utcnow() + timedelta(days=1),
                    "segment": "seg_theirs",
                }
            ],
        },
        actor_id=None,
        now=clock.utcnow(),
    )
    _merchant(session, "shop@example.org")
    _sign_in(client, "shop@example.org")

    assert client.get("/portal/earn-rules/campaigns/Theirs").status_code == 404
