"""The events API (SPEC 3.6) as a merchant's developer meets it: each event's `data` is what the
route that made the change answered, the envelope is the delivered one, a merchant lists and
fetches its own events of the last 30 days only, newest first, paginated, filtered by type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from coalition import clock, outbox
from coalition.members import codes
from coalition.members.models import Member
from tests import factories as f

EVENTS = "/api/v1/events"
PURCHASES = "/api/v1/purchases"


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The API's clock, frozen at the start of a code step (a test moves it by hand)."""
    wall = datetime.now(UTC).replace(microsecond=0)
    moment = [wall - timedelta(seconds=wall.second % codes.STEP_SECONDS)]
    monkeypatch.setattr(clock, "utcnow", lambda: moment[0])
    return moment


def member_row(session, member_id: int) -> Any:
    return session.execute(select(Member).where(Member.id == member_id)).scalar_one()


def code_of(session, member_id: int, at: datetime) -> str:
    return codes.current_code(member_row(session, member_id).totp_secret, at)[0]


def listed(client, headers, **params: Any) -> dict[str, Any]:
    response = client.get(EVENTS, query_string=params, headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def by_type(client, headers) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for event in listed(client, headers, limit=100)["data"]:
        found.setdefault(event["type"], []).append(event)
    return found


def test_each_event_carries_what_its_route_answered(session, client, now):
    shop = f.merchant(session, "Bakery")
    till = f.merchant_headers(session, shop)
    enrolled = client.post("/api/v1/members", json={"email": "alice@example.com"}, headers=till)
    card = enrolled.json["card_number"]
    alice = session.execute(
        select(Member.id).where(Member.public_id == enrolled.json["id"])
    ).scalar_one()

    bought = client.post(
        PURCHASES,
        json={"member": card, "amount": 2000, "currency": "EUR", "external_id": "r-1"},
        headers=till,
    ).json
    refunded = client.post(
        f"{PURCHASES}/{bought['transaction']['id']}/refunds",
        json={"amount": 500, "external_id": "ret-1"},
        headers=till,
    ).json
    redeemed = client.post(
        "/api/v1/redemptions",
        json={
            "member": card,
            "code": code_of(session, alice, now[0]),
            "points": 5,
            "external_id": "red-1",
        },
        headers=till,
    ).json
    reversal = client.post(
        f"/api/v1/redemptions/{redeemed['transaction']['id']}/reversal", json={}, headers=till
    ).json
    now[0] += timedelta(seconds=codes.STEP_SECONDS)  # a code works once: the next one
    held = client.post(
        "/api/v1/holds",
        json={"member": card, "code": code_of(session, alice, now[0]), "points": 3},
        headers=till,
    ).json
    captured = client.post(
        f"/api/v1/holds/{held['hold']['id']}/capture", json={}, headers=till
    ).json
    now[0] += timedelta(seconds=codes.STEP_SECONDS)
    held = client.post(
        "/api/v1/holds",
        json={"member": card, "code": code_of(session, alice, now[0]), "points": 2},
        headers=till,
    ).json
    voided = client.post(f"/api/v1/holds/{held['hold']['id']}/void", json={}, headers=till).json

    events = by_type(client, till)
    data = {kind: [event["data"] for event in found] for kind, found in events.items()}
    # The API's own transaction (or hold), and the member by its id alone (no balance).
    for kind, answer, key in [
        ("purchase.created", bought, "transaction"),
        ("purchase.refunded", refunded, "transaction"),
        ("redemption.created", redeemed, "transaction"),
        ("redemption.reversed", reversal, "transaction"),
        ("hold.captured", captured, "transaction"),
        ("hold.voided", voided, "hold"),
    ]:
        assert data[kind] == [{key: answer[key], "member": {"id": enrolled.json["id"]}}], kind
    # A member by its ids only: the merchant's answer had the email, the event has none.
    [created] = data["member.created"]
    assert created == {
        "member": {
            "id": enrolled.json["id"],
            "tier": enrolled.json["tier"],
            "created_at": enrolled.json["created_at"],
        }
    }
    assert "alice@example.com" not in str(events)
    # The envelope, as delivered, and the same one event by event.
    for found in events.values():
        for event in found:
            assert set(event) == {"id", "type", "created_at", "data"}
            assert event["id"].startswith("evt_")
            fetched = client.get(f"{EVENTS}/{event['id']}", headers=till)
            assert fetched.status_code == 200
            assert fetched.json == event


def test_the_list_is_newest_first_paginated_filtered_and_thirty_days_long(
    session, client, monkeypatch
):
    shop = f.merchant(session)
    alice = f.member(session)
    today = f.T0 + timedelta(days=60)
    f.purchase(session, alice, shop, 10, now=today - timedelta(days=30, seconds=1))  # too old
    kept = [
        f.purchase(session, alice, shop, 20 + day, now=today - timedelta(days=day))
        for day in (30, 12, 3)
    ]
    f.redeem(session, alice, shop, 5, now=today - timedelta(days=1))
    monkeypatch.setattr(clock, "utcnow", lambda: today)
    till = f.merchant_headers(session, shop)

    first = listed(client, till, limit=2)
    rest = listed(client, till, limit=2, cursor=first["next_cursor"])
    assert rest["next_cursor"] is None
    events = first["data"] + rest["data"]
    assert [e["type"] for e in events] == ["redemption.created"] + ["purchase.created"] * 3
    assert [e["data"]["transaction"]["id"] for e in events[1:]] == [
        k["transaction"]["id"] for k in reversed(kept)
    ]
    assert [e["created_at"] for e in events] == sorted(
        (e["created_at"] for e in events), reverse=True
    )

    only = listed(client, till, type="redemption.created")["data"]
    assert [e["type"] for e in only] == ["redemption.created"]
    both = listed(client, till, type=["redemption.created", "purchase.created"])["data"]
    assert len(both) == 4
    since = listed(client, till, since=(today - timedelta(days=12)).isoformat())["data"]
    assert len(since) == 3
    until = listed(client, till, until=(today - timedelta(days=12)).isoformat())["data"]
    assert [e["data"]["transaction"]["points"] for e in until] == [50]

    bad = client.get(EVENTS, query_string={"type": "purchase.made"}, headers=till)
    assert bad.status_code == 422
    typo = client.get(EVENTS, query_string={"types": "purchase.created"}, headers=till)
    assert typo.status_code == 422


def test_an_event_not_the_merchants_or_not_listed_is_not_found(session, client, monkeypatch):
    shop, other = f.merchant(session, "Mine"), f.merchant(session, "Theirs")
    alice = f.member(session)
    today = f.T0 + timedelta(days=60)
    f.purchase(session, alice, other, 10, now=today)
    f.purchase(session, alice, shop, 10, now=today - timedelta(days=31))
    outbox.emit(
        session, "merchant.password_reset_requested", {"link": "x"}, today, merchant_id=shop
    )
    outbox.emit(session, "membership.started", {}, today, member_id=alice)
    rows = session.execute(select(outbox.outbox_events.c.public_id)).scalars().all()
    monkeypatch.setattr(clock, "utcnow", lambda: today)
    till = f.merchant_headers(session, shop)

    assert listed(client, till)["data"] == []
    for public_id in [*rows, "evt_nothing", "not-an-id"]:
        response = client.get(f"{EVENTS}/{public_id}", headers=till)
        assert (response.status_code, response.json["code"]) == (404, "not_found")


def test_the_events_need_the_webhooks_scope_and_a_merchant(session, client):
    shop, alice = f.merchant(session), f.member(session)
    reader = f.merchant_headers(session, shop, "transactions:read")
    assert client.get(EVENTS, headers=reader).status_code == 403
    member = f.member_headers(session, shop, alice)
    assert client.get(EVENTS, headers=member).status_code in (401, 403)


def test_a_batchs_purchases_each_carry_their_lines_answer(session, client, now):
    shop = f.merchant(session)
    till = f.merchant_headers(session, shop)
    members = [member_row(session, f.member(session)) for _ in range(2)]
    lines = [
        {"member": m.card_number, "amount": 1000 + i, "currency": "EUR", "external_id": f"b-{i}"}
        for i, m in enumerate(members)
    ]
    answered = client.post(f"{PURCHASES}/batch", json=lines, headers=till).json["results"]

    events = listed(client, till, type="purchase.created")["data"]
    assert [e["data"] for e in reversed(events)] == [
        {"transaction": line["body"]["transaction"], "member": {"id": line["body"]["member"]["id"]}}
        for line in answered
    ]
