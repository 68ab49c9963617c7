"""The first wall (QUALITY S1): a merchant asking for another merchant's object gets 404, exactly
as if it did not exist, and nothing changes. Every route with an object id in its path is called
with the ids of another tenant's objects; a route the table below does not know fails the test,
so a new route must say what its ids are before it can ship."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from coalition import clock, outbox, tenancy
from coalition.extensions import db
from coalition.ledger import holds
from coalition.privacy import services as privacy
from coalition.segments import services as segment_services
from coalition.web.access import policy_of
from merchants import rules as earn_rules
from merchants.rules_schemas import EarnRulesIn
from rewards import services as reward_services
from tests import factories
from tests.rewards.helpers import reward as listed_reward
from webhooks import services as webhook_services

# Path parameter -> the kind of object it names (a key of the `victim` fixture).
OBJECT_PARAMS = {
    "purchase_id": "purchase",
    "redemption_id": "redemption",
    "hold_id": "hold",
    "statement_id": "statement",
    "endpoint_id": "webhook_endpoint",
    "event_id": "event",
    "reward_id": "reward",
    "order_id": "order",
    "code": "voucher",
    "segment_id": "segment",
    "name": "campaign",
}
# Routes whose path ids are not a tenant's, with the reason.
COALITION_WIDE = {
    # SPEC 2: a card alone lets any partner award points; the look-up shows no shop's history.
    "/api/v1/members/<card_or_id>",
    # A draw is the operator's, public to all (SPEC 3.4): any member may enter any open draw.
    "/api/v1/me/draws/<draw_id>/entries",
}
IGNORED_METHODS = {"HEAD", "OPTIONS"}
# A body each route would accept for an object of the caller's own, so that only the id is wrong.
VALID_BODIES = {
    "/api/v1/statements/<statement_id>/disputes": {"line": 1, "reason": "Not our count"},
    "/api/v1/purchases/<purchase_id>/refunds": {"amount": 100, "external_id": "return-1"},
    "/api/v1/holds/<hold_id>/capture": {"points": 1},
    "/api/v1/webhook-endpoints/<endpoint_id>": {"description": "mine now", "enabled": False},
    "/api/v1/segments/<segment_id>": {"name": "Mine now", "definition": {}},
    "/api/v1/rewards/<reward_id>": {
        "name": "Mine now",
        "kind": "gift",
        "points": 1,
        "fulfilment_days": 1,
        "category": "stolen",
    },
}


def _tenant_routes(app: Flask) -> list[tuple[str, str, tuple[str, ...]]]:
    found = []
    for rule in app.url_map.iter_rules():
        policy = policy_of(app, rule.endpoint)
        if policy is None or policy.public or "operator" in policy.kinds:
            continue  # public routes name no tenant's object; the operator sees the coalition
        for method in sorted((rule.methods or set()) - IGNORED_METHODS):
            found.append((rule.rule, method, policy.kinds))
    return found


def _snapshot(session: Session) -> dict[str, Any]:
    """Everything a call could change, seen by the system. Idempotency keys are left out: the
    caller's own key store remembers the 404 it was given, so that a retry replays it."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        counts = {
            table.name: session.execute(text(f'SELECT count(*) FROM "{table.name}"')).scalar()
            for table in db.metadata.sorted_tables
            if table.name != "idempotency_keys"
        }
        balances = session.execute(text("SELECT id, balance, debt FROM accounts ORDER BY id")).all()
        holds = session.execute(text("SELECT id, status FROM holds ORDER BY id")).all()
        endpoints = session.execute(text("SELECT * FROM webhook_endpoints ORDER BY id")).all()
        deliveries = session.execute(text("SELECT * FROM webhook_deliveries ORDER BY id")).all()
    return {
        "counts": counts,
        "balances": balances,
        "holds": holds,
        "endpoints": endpoints,
        "deliveries": deliveries,
    }


@pytest.fixture
def victim(session: Session) -> dict[str, str]:
    """Merchant A's objects: a purchase, a redemption and an active hold of its member, a
    statement and an event."""
    shop = factories.merchant(session, "Victim")
    member = factories.member(session)
    purchase = factories.purchase(session, member, shop, 500)
    redemption = factories.redeem(session, member, shop, 100)
    hold = holds.place_hold(
        session, member_id=member, merchant_id=shop, points=50, now=factories.T0
    )
    statement = factories.statement(session, shop).public_id
    # A webhook endpoint (on PostgreSQL's row-level security, written as the system) and an
    # event of its own for it to hear, delivered once; written now, so that it is within the 30
    # days the events API lists.
    with tenancy.acting_as(tenancy.SYSTEM, session):
        endpoint = webhook_services.create_endpoint(
            session,
            shop,
            url="https://127.0.0.1/hook",
            events=None,
            description="",
            allow_private=True,
            now=factories.T0,
        ).endpoint.id
        event = outbox.event_row("purchase.created", {"note": 1}, clock.utcnow(), merchant_id=shop)
        outbox.record(session, [event])
        webhook_services.redeliver(session, shop, event["public_id"], endpoint, factories.T0)
    # A reward of its own, a member's order of it (pending) and a voucher (not yet accepted).
    gift = listed_reward(session, shop)
    voucher = listed_reward(session, shop, kind="voucher", points=10)
    order = reward_services.place_order(
        session, member_id=member, reward_id=gift, quantity=1, now=factories.T0
    )
    code = reward_services.place_order(
        session, member_id=member, reward_id=voucher, quantity=1, now=factories.T0
    ).voucher_code
    # A segment of its customers (the member above consents to profiling), and a targeted
    # campaign of its own on it, which has a report.
    privacy.set_consents(session, member, {"profiling": True}, source=privacy.ME, now=factories.T0)
    segment = segment_services.create(
        session,
        segment_services.Owner(shop),
        name="Victim's",
        definition={},
        now=clock.utcnow(),
    )
    campaign = "Regulars-week"
    earn_rules.put(
        session,
        merchant_id=shop,
        document=EarnRulesIn().load(
            {
                "base_rate": "1",
                "campaigns": [
                    {
                        "name": campaign,
                        "multiplier": "2",
                        "starts_at": "2026-01-01T00:00:00+00:00",
                        "ends_at": "2027-01-01T00:00:00+00:00",
                        "segment": segment,
                    }
                ],
            }
        ),
        actor_id=None,
        now=clock.utcnow(),
    )
    return {
        "segment": segment,
        "campaign": campaign,
        "reward": gift,
        "order": order.id,
        "voucher": str(code),
        "webhook_endpoint": endpoint,
        "event": str(event["public_id"]),
        "statement": statement,
        "purchase": purchase["transaction"]["id"],
        "redemption": redemption["transaction"]["id"],
        "hold": hold["hold"]["id"],
        "member": str(member),
    }


@pytest.fixture
def attacker(session: Session) -> dict[str, dict[str, str]]:
    """Merchant B: a till with every merchant scope, and a member signed in to its app."""
    shop = factories.merchant(session, "Attacker")
    member = factories.member(session)
    factories.purchase(session, member, shop, 100)
    return {
        "merchant": factories.merchant_headers(session, shop),
        "member": factories.member_headers(session, shop, member),
    }


def test_every_route_with_an_object_id_is_known_to_this_test(app: Flask) -> None:
    unknown = []
    for rule, method, _ in _tenant_routes(app):
        params = re.findall(r"<(?:[^:>]+:)?([^>]+)>", rule)
        if rule not in COALITION_WIDE and any(p not in OBJECT_PARAMS for p in params):
            unknown.append(f"{method} {rule}")
    assert unknown == []


def test_another_merchants_objects_are_not_found_and_nothing_changes(
    app: Flask,
    client: FlaskClient,
    session: Session,
    victim: dict[str, str],
    attacker: dict[str, dict[str, str]],
) -> None:
    before = _snapshot(session)
    answers = {}
    for rule, method, kinds in _tenant_routes(app):
        params = re.findall(r"<(?:[^:>]+:)?([^>]+)>", rule)
        if not params or rule in COALITION_WIDE:
            continue
        url = rule
        for param in params:
            url = re.sub(rf"<(?:[^:>]+:)?{param}>", victim[OBJECT_PARAMS[param]], url)
        for kind in kinds:
            response = client.open(
                url,
                method=method,
                headers={**attacker[kind], "Idempotency-Key": f"probe-{method}-{rule}"},
                json=VALID_BODIES.get(rule, {}),
            )
            answers[f"{method} {rule} as {kind}"] = (response.status_code, response.json["code"])

    assert answers, "no route takes another tenant's object id"
    assert answers == dict.fromkeys(answers, (404, "not_found"))
    assert _snapshot(session) == before


def test_a_merchants_transaction_list_shows_nothing_of_another_merchant(
    client: FlaskClient,
    session: Session,
    victim: dict[str, str],
    attacker: dict[str, dict[str, str]],
) -> None:
    listed = client.get("/api/v1/transactions?limit=500", headers=attacker["merchant"]).json
    ids = {t["id"] for t in listed["data"]}
    assert ids  # the attacker's own purchase is there
    assert not ids & {victim["purchase"], victim["redemption"]}


def test_a_merchants_events_show_nothing_of_another_merchant(
    client: FlaskClient,
    session: Session,
    victim: dict[str, str],
    attacker: dict[str, dict[str, str]],
) -> None:
    own = client.get("/api/v1/transactions?limit=1", headers=attacker["merchant"]).json
    [purchase] = own["data"]
    with tenancy.acting_as(tenancy.SYSTEM, session):
        merchant_id = session.execute(
            text("SELECT merchant_id FROM transactions WHERE public_id = :id"),
            {"id": purchase["id"]},
        ).scalar_one()
    mine = outbox.event_row("purchase.created", {}, clock.utcnow(), merchant_id=merchant_id)
    outbox.record(session, [mine])
    listed = client.get("/api/v1/events?limit=100", headers=attacker["merchant"]).json
    assert [e["id"] for e in listed["data"]] == [mine["public_id"]]


def test_a_member_token_lists_only_its_own_members_transactions(
    client: FlaskClient,
    session: Session,
    victim: dict[str, str],
    attacker: dict[str, dict[str, str]],
) -> None:
    listed = client.get("/api/v1/me/transactions", headers=attacker["member"]).json
    assert [t["type"] for t in listed["data"]] == ["earn"]
    assert not {t["id"] for t in listed["data"]} & {victim["purchase"], victim["redemption"]}


def test_a_merchants_audience_holds_none_of_another_merchants_shoppers(
    client: FlaskClient,
    session: Session,
    victim: dict[str, str],
    attacker: dict[str, dict[str, str]],
) -> None:
    """The victim's member consented to everything, but shopped only at the victim's shop."""
    privacy.set_consents(
        session,
        int(victim["member"]),
        dict.fromkeys(("email", "sms", "post", "sharing"), True),
        source=privacy.ME,
        now=factories.T0,
    )
    for channel in ("email", "sms", "post"):
        listed = client.get(f"/api/v1/audience?channel={channel}", headers=attacker["merchant"])
        assert listed.status_code == 200
        assert listed.json == {"data": [], "next_cursor": None}


def test_a_member_token_reads_and_exports_only_its_own_member(
    client: FlaskClient,
    session: Session,
    victim: dict[str, str],
    attacker: dict[str, dict[str, str]],
) -> None:
    privacy.set_consents(
        session, int(victim["member"]), {"email": True}, source=privacy.ME, now=factories.T0
    )
    consents = client.get("/api/v1/me/consents", headers=attacker["member"]).json
    exported = client.get("/api/v1/me/export", headers=attacker["member"]).json
    assert consents["history"] == []
    assert {t["id"] for t in exported["transactions"]}.isdisjoint(
        {victim["purchase"], victim["redemption"]}
    )


def test_a_merchants_webhook_endpoint_list_holds_none_of_another_merchants(
    client: FlaskClient,
    session: Session,
    victim: dict[str, str],
    attacker: dict[str, dict[str, str]],
) -> None:
    listed = client.get("/api/v1/webhook-endpoints", headers=attacker["merchant"])
    assert listed.status_code == 200
    assert listed.json == {"data": [], "next_cursor": None}


def test_a_merchants_insights_count_nothing_of_another_merchants_shop(
    client: FlaskClient,
    session: Session,
    victim: dict[str, str],
    attacker: dict[str, dict[str, str]],
) -> None:
    """The victim's member bought 500 points' worth (50,000 cents) and redeemed at the victim's
    shop; the attacker's insights hold only its own customer's purchase (100 points, 10,000
    cents), won nobody, and name no other shop."""
    answer = client.get(
        "/api/v1/insights?from=2026-03-01&to=2026-03-31", headers=attacker["merchant"]
    )
    assert answer.status_code == 200
    found = answer.json
    assert (found["purchases"], found["customers"], found["sales"]["amount"]) == (1, 1, 10000)
    assert found["won"] == {"members": 0, "came_back": 0}
    assert found["points"] == {"issued": 100, "redeemed": 0}
    assert [row["net"] for row in found["net_by_month"]] == ["0.00"]
    assert "Victim" not in answer.get_data(as_text=True)
    assert "mer_" not in answer.get_data(as_text=True)
