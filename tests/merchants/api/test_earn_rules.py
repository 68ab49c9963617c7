"""A merchant's earn rules over HTTP (SPEC 2, 3.3: `GET`/`PUT /api/v1/earn-rules`) and purchases
earned under them: versions in force at a purchase's `occurred_at`, categories, campaigns,
stamps, tiers, the cap per purchase; the operator's monthly issuance cap (SPEC 2, Budgets)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update

from coalition import clock
from coalition.ledger.models import Transaction
from coalition.members.models import Member
from merchants.models import Merchant
from merchants.rules_schemas import EarnRulesOut
from tests import factories as f

RULES = "/api/v1/earn-rules"
PURCHASES = "/api/v1/purchases"
BATCH = "/api/v1/purchases/batch"


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The API's clock, frozen (a test moves it by hand)."""
    moment = [datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)]
    monkeypatch.setattr(clock, "utcnow", lambda: moment[0])
    return moment


@pytest.fixture
def shop(session) -> int:
    return f.merchant(session, "Bakery")


def headers(session, merchant_id: int, scope: str = f.ALL_MERCHANT_SCOPES) -> dict[str, str]:
    """A till's token that lives through the tests' travels in time."""
    client_id = f.client(session, merchant_id, scope)["client_id"]
    return f.bearer(session, client_id, scope, expires_in=timedelta(days=30))


@pytest.fixture
def till(session, shop, now) -> dict[str, str]:
    return headers(session, shop)


def card_of(session, member_id: int) -> str:
    return session.execute(select(Member.card_number).where(Member.id == member_id)).scalar_one()


def buy(client, headers, member: str, amount: int, external_id: str, **extra: Any):
    body = {"member": member, "amount": amount, "currency": "EUR", "external_id": external_id}
    return client.post(PURCHASES, json={**body, **extra}, headers=headers)


def problem(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert body["code"] == code, body
    return body


def rules_doc(**extra: Any) -> dict[str, Any]:
    return {"base_rate": "1", **extra}


def coffee_rules(now: datetime) -> dict[str, Any]:
    return {
        "base_rate": "1",
        "category_multipliers": {"coffee": "2"},
        "campaigns": [
            {
                "name": "Coffee week",
                "multiplier": "1.5",
                "starts_at": (now - timedelta(days=1)).isoformat(),
                "ends_at": (now + timedelta(days=6)).isoformat(),
                "categories": ["coffee"],
            }
        ],
        "max_points_per_purchase": 500,
        "stamp_cards": [{"name": "Coffee card", "category": "coffee", "buy": 10, "reward": 50}],
    }


def basket(card: str, external_id: str, coffees: int = 3) -> dict[str, Any]:
    return {
        "member": card,
        "amount": 2000,
        "currency": "EUR",
        "external_id": external_id,
        "store": "Main St",
        "items": [
            {"sku": "flat-white", "category": "coffee", "amount": 1200, "quantity": coffees},
            {"sku": "cheesecake", "category": "cake", "amount": 800, "quantity": 2},
        ],
    }


# The rules over HTTP.


@pytest.mark.both_backends
def test_a_merchant_that_never_set_rules_earns_at_its_base_rate_as_version_1(client, till, now):
    response = client.get(RULES, headers=till)

    assert response.status_code == 200
    body = EarnRulesOut().load(response.get_json())
    assert body["version"] == 1
    assert (body["base_rate"], body["campaigns"], body["stamp_cards"]) == ("1", [], [])
    assert body["max_points_per_purchase"] is None


@pytest.mark.both_backends
def test_putting_rules_writes_a_new_version_in_force_from_now(client, session, shop, till, now):
    response = client.put(RULES, json=coffee_rules(now[0]), headers=till)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["version"] == 2
    assert body["effective_from"] == now[0].isoformat()
    assert body["category_multipliers"] == {"coffee": "2"}
    assert body["campaigns"][0]["multiplier"] == "1.5"
    assert client.get(RULES, headers=till).get_json() == body
    # The directory's base rate mirrors the version in force.
    rules = dict(coffee_rules(now[0]), base_rate="2.5")
    assert client.put(RULES, json=rules, headers=till).get_json()["version"] == 3
    rate = session.execute(select(Merchant.base_rate).where(Merchant.id == shop)).scalar_one()
    assert rate == Decimal("2.5")


def test_the_same_rules_again_write_no_new_version(client, till, now):
    first = client.put(RULES, json=coffee_rules(now[0]), headers=till).get_json()
    now[0] += timedelta(minutes=5)

    again = client.put(RULES, json=coffee_rules(now[0] - timedelta(minutes=5)), headers=till)

    assert again.get_json() == first


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        (rules_doc(bonus="1"), "bonus"),  # unknown key
        ({"category_multipliers": {}}, "base_rate"),  # missing
        ({"base_rate": 1.5}, "base_rate"),  # a JSON number: a float
        ({"base_rate": "1.23456"}, "base_rate"),  # more than 4 places
        ({"base_rate": "1\n"}, "base_rate"),
        ({"base_rate": "0"}, "base_rate"),
        (rules_doc(category_multipliers={"coffee": "11"}), "category_multipliers"),
        (rules_doc(category_multipliers={"coffee": "-1"}), "category_multipliers"),
        (rules_doc(max_points_per_purchase=0), "max_points_per_purchase"),
        (
            rules_doc(stamp_cards=[{"name": "A", "category": "tea", "buy": 0, "reward": 5}]),
            "stamp_cards",
        ),
        (
            rules_doc(stamp_cards=[{"name": "A", "category": "tea", "buy": 5, "reward": 5}] * 2),
            "stamp_cards",
        ),
    ],
)
def test_bad_rules_are_refused_field_by_field_and_change_nothing(client, till, now, rules, field):
    body = problem(client.put(RULES, json=rules, headers=till), 422, "validation_error")

    assert field in str(body["errors"])
    assert client.get(RULES, headers=till).get_json()["version"] == 1


def test_a_campaign_must_end_after_it_starts_and_multiply(client, till, now):
    start = now[0].isoformat()
    ended = rules_doc(
        campaigns=[{"name": "C", "multiplier": "2", "starts_at": start, "ends_at": start}]
    )
    shrinking = rules_doc(
        campaigns=[
            {
                "name": "C",
                "multiplier": "0.5",
                "starts_at": start,
                "ends_at": (now[0] + timedelta(days=1)).isoformat(),
            }
        ]
    )

    assert "ends_at" in str(
        problem(client.put(RULES, json=ended, headers=till), 422, "validation_error")["errors"]
    )
    assert "multiplier" in str(
        problem(client.put(RULES, json=shrinking, headers=till), 422, "validation_error")["errors"]
    )
    far = rules_doc(
        campaigns=[
            {
                "name": "C",
                "multiplier": "2",
                "starts_at": "0001-01-01T00:00:00+23:59",
                "ends_at": "9999-12-31T23:59:59-23:59",
            }
        ]
    )
    errors = problem(client.put(RULES, json=far, headers=till), 422, "validation_error")["errors"]
    assert "must be between 2000 and 2100" in str(errors)


def test_a_base_rate_outside_the_operators_bounds_is_refused(client, till, now):
    body = problem(
        client.put(RULES, json=rules_doc(base_rate="12"), headers=till), 422, "validation_error"
    )

    assert "base_rate" in body["errors"]
    assert client.get(RULES, headers=till).get_json()["base_rate"] == "1"


def test_the_rules_need_the_rules_scope(client, session, shop, now):
    purchases_only = f.merchant_headers(session, shop, "purchases:write")

    assert client.get(RULES, headers=purchases_only).status_code == 403
    assert client.put(RULES, json=rules_doc(), headers=purchases_only).status_code == 403


def test_a_merchant_never_reads_nor_earns_under_another_merchants_rules(
    client, session, shop, till, now
):
    other = f.merchant(session, "Grocer")
    other_till = f.merchant_headers(session, other)
    client.put(RULES, json=coffee_rules(now[0]), headers=till)
    alice = card_of(session, f.member(session))

    theirs = client.get(RULES, headers=other_till).get_json()
    bought = buy(client, other_till, alice, 2000, "g-1", items=basket(alice, "x")["items"])

    assert (theirs["version"], theirs["campaigns"]) == (1, [])
    assert bought.get_json()["transaction"]["breakdown"]["base"] == 20
    assert bought.get_json()["transaction"]["breakdown"]["campaign"] == 0


# Purchases under the rules.


@pytest.mark.both_backends
def test_a_purchase_shows_each_rules_contribution_in_its_breakdown(client, session, till, now):
    alice = f.member(session)
    session.execute(update(Member).where(Member.id == alice).values(tier="Gold"))
    client.put(RULES, json=coffee_rules(now[0]), headers=till)
    card = card_of(session, alice)

    first = client.post(PURCHASES, json=basket(card, "r-1", coffees=8), headers=till)
    second = client.post(PURCHASES, json=basket(card, "r-2", coffees=3), headers=till)

    assert first.status_code == 201, first.get_json()
    # base 12 x 2 + 8 = 32, campaign 24 x 0.5 = 12, 8 stamps of 10: no reward yet; Gold x1.5 on
    # 44: 22; and the first purchase anywhere: the welcome bonus.
    assert first.get_json()["transaction"]["breakdown"] == {
        "base": 32,
        "campaign": 12,
        "stamp": 0,
        "tier": 22,
        "welcome": 100,
        "premium": 0,
    }
    # 8 + 3 = 11 stamps: the reward of 50, one stamp carried over.
    assert second.get_json()["transaction"]["breakdown"] == {
        "base": 32,
        "campaign": 12,
        "stamp": 50,
        "tier": 22,
        "welcome": 0,
        "premium": 0,
    }
    assert second.get_json()["transaction"]["points"] == 116
    assert second.get_json()["member"] == {
        "id": session.execute(select(Member.public_id).where(Member.id == alice)).scalar_one(),
        "balance": 166 + 116,
        "tier": "Gold",
    }
    stored = session.execute(
        select(Transaction.rules_version, Transaction.store, Transaction.items).where(
            Transaction.public_id == second.get_json()["transaction"]["id"]
        )
    ).one()
    assert stored.rules_version == 2
    assert stored.store == "Main St"
    assert stored.items == basket(card, "r-2", coffees=3)["items"]


def test_a_purchase_made_before_a_change_of_rules_earns_under_the_old_version(
    client, session, till, now
):
    card = card_of(session, f.member(session))
    before = now[0] - timedelta(hours=2)
    client.put(RULES, json=rules_doc(base_rate="2"), headers=till)  # version 2 from now
    now[0] += timedelta(hours=1)
    client.put(RULES, json=rules_doc(base_rate="3"), headers=till)  # version 3
    between = now[0] - timedelta(minutes=30)

    old = buy(client, till, card, 1000, "late-1", occurred_at=before.isoformat())
    middle = buy(client, till, card, 1000, "late-2", occurred_at=between.isoformat())
    current = buy(client, till, card, 1000, "now-1")

    points = [r.get_json()["transaction"]["breakdown"]["base"] for r in (old, middle, current)]
    assert points == [10, 20, 30]
    versions = (
        session.execute(
            select(Transaction.rules_version)
            .where(Transaction.external_id.in_(["late-1", "late-2", "now-1"]))
            .order_by(Transaction.id)
        )
        .scalars()
        .all()
    )
    assert versions == [1, 2, 3]


def test_a_campaign_earns_only_while_it_runs(client, session, till, now):
    card = card_of(session, f.member(session))
    start = now[0] + timedelta(days=1)
    rules = rules_doc(
        campaigns=[
            {
                "name": "Weekend",
                "multiplier": "3",
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(days=2)).isoformat(),
            }
        ]
    )
    client.put(RULES, json=rules, headers=till)

    def campaign_points(external_id: str) -> int:
        response = buy(client, till, card, 1000, external_id)
        assert response.status_code == 201, response.get_json()
        return response.get_json()["transaction"]["breakdown"]["campaign"]

    assert campaign_points("before") == 0
    now[0] = start
    assert campaign_points("during") == 20
    now[0] = start + timedelta(days=2)
    assert campaign_points("after") == 0


def test_the_batch_earns_each_line_under_the_rules_of_its_moment_and_counts_stamps_in_order(
    client, session, till, now
):
    alice = f.member(session)
    card = card_of(session, alice)
    earlier = now[0] - timedelta(hours=1)
    client.put(RULES, json=coffee_rules(now[0]), headers=till)
    lines = [
        basket(card, "b-1", coffees=6),
        basket(card, "b-2", coffees=6),
        {**basket(card, "b-3", coffees=1), "occurred_at": earlier.isoformat()},
    ]

    response = client.post(BATCH, json=lines, headers=till)

    results = [line["body"]["transaction"]["breakdown"] for line in response.get_json()["results"]]
    assert [r["stamp"] for r in results] == [0, 50, 0]  # 6, then 12: a reward, 2 carried
    assert [r["campaign"] for r in results] == [12, 12, 0]
    assert results[2]["base"] == 20  # before the rules: the base rate alone on 20.00
    single = client.post(PURCHASES, json=basket(card, "b-4", coffees=8), headers=till)
    assert single.get_json()["transaction"]["breakdown"]["stamp"] == 50  # 2 + 8


def test_a_repeat_of_a_receipt_with_other_items_is_a_conflict(client, session, till, now):
    card = card_of(session, f.member(session))
    assert client.post(PURCHASES, json=basket(card, "same"), headers=till).status_code == 201

    again = client.post(PURCHASES, json=basket(card, "same"), headers=till)
    other = client.post(PURCHASES, json=basket(card, "same", coffees=4), headers=till)
    moved = client.post(PURCHASES, json={**basket(card, "same"), "store": "Station"}, headers=till)

    assert again.status_code == 200
    problem(other, 409, "idempotency_conflict")
    problem(moved, 409, "idempotency_conflict")


def test_a_refund_claws_back_stamp_and_tier_points_in_proportion(client, session, till, now):
    alice = f.member(session)
    session.execute(update(Member).where(Member.id == alice).values(tier="Platinum"))
    card = card_of(session, alice)
    client.put(
        RULES,
        json=rules_doc(stamp_cards=[{"name": "C", "category": "coffee", "buy": 2, "reward": 40}]),
        headers=till,
    )
    bought = client.post(PURCHASES, json=basket(card, "p-1", coffees=2), headers=till).get_json()
    assert bought["transaction"]["breakdown"] == {
        "base": 20,
        "campaign": 0,
        "stamp": 40,
        "tier": 20,
        "welcome": 100,
        "premium": 0,
    }

    refund = client.post(
        f"{PURCHASES}/{bought['transaction']['id']}/refunds",
        json={"amount": 1000, "external_id": "ret-1"},
        headers=till,
    )

    # Half the purchase: half the merchant's 60 (base and stamp) and half the tier's 20; the
    # welcome stays until a full refund.
    assert refund.get_json()["transaction"]["breakdown"] == {
        "merchant": 30,
        "tier": 10,
        "welcome": 0,
    }
