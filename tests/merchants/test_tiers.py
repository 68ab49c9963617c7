"""Tiers at the till (SPEC 2, Tiers): the purchase that takes a member's qualifying spend over a
threshold upgrades it at once, alone or in a batch, and says so in its answer and once in the
outbox; a purchase never downgrades. The multiplier applies from the next purchase."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from coalition import clock, tenancy
from coalition.members import tiers
from coalition.members.models import Member
from coalition.outbox import OutboxEvent
from merchants import purchases, schemas
from tests import factories as f
from tests.factories import T0

pytestmark = pytest.mark.both_backends

PURCHASES = "/api/v1/purchases"
BATCH = "/api/v1/purchases/batch"
NOW = T0 + timedelta(days=30)
EUR = 100


@pytest.fixture(autouse=True)
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)


@pytest.fixture
def shop(session) -> int:
    return f.merchant(session, "Grocer")


@pytest.fixture
def till(session, shop) -> dict[str, str]:
    return f.merchant_headers(session, shop)


def card_of(session, member_id: int) -> str:
    return session.execute(select(Member.card_number).where(Member.id == member_id)).scalar_one()


def tier_of(session, member_id: int) -> str:
    return session.execute(select(Member.tier).where(Member.id == member_id)).scalar_one()


def changes(session) -> list[tuple]:
    table = OutboxEvent.__table__
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return [
            (row.member_id, row.merchant_id, row.data["from"], row.data["to"], row.data["reason"])
            for row in session.execute(
                select(table.c.member_id, table.c.merchant_id, table.c.data)
                .where(table.c.type == "member.tier_changed")
                .order_by(table.c.id)
            )
        ]


def event_data(session) -> list[dict]:
    table = OutboxEvent.__table__
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return list(
            session.execute(
                select(table.c.data).where(table.c.type == "member.tier_changed")
            ).scalars()
        )


def purchase(card: str, amount: int, external_id: str) -> dict:
    return {"member": card, "amount": amount, "currency": "EUR", "external_id": external_id}


def member_who_spent(session, elsewhere: int, amount_minor: int) -> int:
    """A member with `amount_minor` spent at another merchant earlier in the window."""
    member = f.member(session)
    f.purchase(session, member, elsewhere, 1, amount_minor=amount_minor)
    return member


def test_the_purchase_that_crosses_a_threshold_upgrades_the_member_at_once(
    session, client, shop, till
):
    garage = f.merchant(session, "Garage")
    alice = member_who_spent(session, garage, 450 * EUR)

    below = client.post(
        PURCHASES, json=purchase(card_of(session, alice), 49 * EUR, "r-1"), headers=till
    )
    assert below.get_json()["member"]["tier"] == "Member"
    crossing = client.post(
        PURCHASES, json=purchase(card_of(session, alice), 1 * EUR, "r-2"), headers=till
    )

    assert crossing.status_code == 201
    body = crossing.get_json()
    assert body["member"]["tier"] == "Silver"
    # Its own points were earned in the tier it was made in: the multiplier comes next time.
    assert body["transaction"]["breakdown"]["tier"] == 0
    assert tier_of(session, alice) == "Silver"
    assert changes(session) == [(alice, shop, "Member", "Silver", "purchase")]
    # The merchant is told of the tier, not of what she spent at other shops.
    [data] = event_data(session)
    assert data == {
        "member": {"id": body["member"]["id"]},
        "from": "Member",
        "to": "Silver",
        "reason": "purchase",
    }


def test_a_replay_or_a_later_purchase_writes_no_second_event(session, client, shop, till):
    alice = member_who_spent(session, shop, 499 * EUR)
    card = card_of(session, alice)

    first = client.post(PURCHASES, json=purchase(card, 5 * EUR, "r-1"), headers=till)
    again = client.post(PURCHASES, json=purchase(card, 5 * EUR, "r-1"), headers=till)
    later = client.post(PURCHASES, json=purchase(card, 5 * EUR, "r-2"), headers=till)

    assert first.status_code == 201 and again.status_code == 200
    assert [r.get_json()["member"]["tier"] for r in (first, again, later)] == ["Silver"] * 3
    assert len(changes(session)) == 1


def test_a_purchase_may_climb_two_tiers_in_one_step(session, client, shop, till):
    alice = f.member(session)

    response = client.post(
        PURCHASES, json=purchase(card_of(session, alice), 2500 * EUR, "r-1"), headers=till
    )

    assert response.get_json()["member"]["tier"] == "Gold"
    assert changes(session) == [(alice, shop, "Member", "Gold", "purchase")]


def test_a_purchase_never_downgrades(session, client, shop, till):
    alice = f.member(session)  # no spend at all, but Gold (a year ago, say)
    session.execute(update(Member).where(Member.id == alice).values(tier="Gold"))

    response = client.post(
        PURCHASES, json=purchase(card_of(session, alice), 10 * EUR, "r-1"), headers=till
    )

    assert response.get_json()["member"]["tier"] == "Gold"
    assert tier_of(session, alice) == "Gold"
    assert changes(session) == []


def test_refunds_count_against_the_spend_a_purchase_reads(session, client, shop, till):
    alice = f.member(session)
    card = card_of(session, alice)
    bought = client.post(PURCHASES, json=purchase(card, 400 * EUR, "r-1"), headers=till)
    client.post(
        f"{PURCHASES}/{bought.get_json()['transaction']['id']}/refunds",
        json={"amount": 300 * EUR, "external_id": "back-1"},
        headers=till,
    )

    response = client.post(PURCHASES, json=purchase(card, 200 * EUR, "r-2"), headers=till)

    assert response.get_json()["member"]["tier"] == "Member"  # 400 - 300 + 200 = 300 EUR
    assert changes(session) == []


def test_a_batch_upgrades_each_member_whose_lines_cross_once(session, client, shop, till):
    alice = member_who_spent(session, shop, 480 * EUR)
    bob = member_who_spent(session, shop, 100 * EUR)
    carol = f.member(session)
    lines = [
        purchase(card_of(session, alice), 10 * EUR, "b-1"),
        purchase(card_of(session, bob), 10 * EUR, "b-2"),
        purchase(card_of(session, alice), 10 * EUR, "b-3"),
        purchase(card_of(session, carol), 2000 * EUR, "b-4"),
        purchase(card_of(session, alice), 10 * EUR, "b-5"),
    ]

    response = client.post(BATCH, json=lines, headers=till)

    results = response.get_json()["results"]
    assert [r["status"] for r in results] == [201] * 5
    # A batch is recorded at one moment: its lines show each member's tier after it.
    assert [r["body"]["member"]["tier"] for r in results] == [
        "Silver",
        "Member",
        "Silver",
        "Gold",
        "Silver",
    ]
    assert sorted(changes(session)) == sorted(
        [
            (alice, shop, "Member", "Silver", "purchase"),
            (carol, shop, "Member", "Gold", "purchase"),
        ]
    )
    again = client.post(BATCH, json=lines, headers=till)
    assert [r["status"] for r in again.get_json()["results"]] == [200] * 5
    assert len(changes(session)) == 2


def test_spend_that_aged_out_downgrades_at_night_never_at_a_purchase(session, shop):
    alice = member_who_spent(session, shop, 600 * EUR)  # 2 March 2026
    tiers.recalculate(session, date(2026, 3, 2), T0 + timedelta(days=1))
    assert tier_of(session, alice) == "Silver"
    a_year_on = T0 + timedelta(days=400)  # the purchase left the window weeks ago
    valid = schemas.PurchaseSchema().load(purchase(card_of(session, alice), 10 * EUR, "late"))

    result = purchases.record_purchase(
        session, merchant_id=shop, purchase=valid, actor=f.TILL, now=a_year_on
    )

    assert result.member.tier == "Silver"
    assert tier_of(session, alice) == "Silver"
    tiers.recalculate(session, date(2027, 4, 6), a_year_on + timedelta(days=1))
    assert tier_of(session, alice) == "Member"
    assert [change[2:] for change in changes(session)] == [
        ("Member", "Silver", "recalculation"),
        ("Silver", "Member", "recalculation"),
    ]
