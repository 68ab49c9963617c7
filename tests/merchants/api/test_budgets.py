"""The operator's monthly issuance cap per merchant (SPEC 2, Budgets): set over the operator API,
counted on merchant-funded points, refused past it with `422 issuance_cap_reached` (never fewer
points), one batch line at a time, and held under concurrent purchases."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from coalition import clock
from coalition.audit import AuditEvent
from coalition.extensions import db
from coalition.ledger.models import Transaction
from coalition.members.models import Member
from merchants import budgets, purchases
from merchants.budgets import IssuanceCapReached
from merchants.models import Merchant
from tests import factories as f
from tests.races import race

PURCHASES = "/api/v1/purchases"


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    # The middle of a month in the coalition's zone, whatever the day the tests run.
    moment = [datetime(2026, 11, 15, 12, 0, tzinfo=UTC)]
    monkeypatch.setattr(clock, "utcnow", lambda: moment[0])
    return moment


@pytest.fixture
def shop(session) -> int:
    return f.merchant(session, "Bakery")


@pytest.fixture
def till(session, shop, now) -> dict[str, str]:
    client_id = f.client(session, shop)["client_id"]
    return f.bearer(session, client_id, f.ALL_MERCHANT_SCOPES, expires_in=timedelta(days=60))


@pytest.fixture
def operator(session, now) -> dict[str, str]:
    client_id = f.client(session, None, "operator")["client_id"]
    return f.bearer(session, client_id, "operator", expires_in=timedelta(days=60))


def public_id(session, merchant_id: int) -> str:
    return session.execute(
        select(Merchant.public_id).where(Merchant.id == merchant_id)
    ).scalar_one()


def card_of(session, member_id: int) -> str:
    return session.execute(select(Member.card_number).where(Member.id == member_id)).scalar_one()


def buy(client, till, card: str, amount: int, external_id: str):
    body = {"member": card, "amount": amount, "currency": "EUR", "external_id": external_id}
    return client.post(PURCHASES, json=body, headers=till)


@pytest.mark.both_backends
def test_the_operator_sets_a_cap_and_a_purchase_past_it_is_refused_whole(
    client, session, shop, till, operator
):
    card = card_of(session, f.member(session))
    assert buy(client, till, card, 3000, "before-cap").status_code == 201  # 30 points
    url = f"/api/v1/ops/merchants/{public_id(session, shop)}/budget"

    response = client.put(url, json={"monthly_issuance_cap": 100}, headers=operator)

    # The month so far counts: the 30 points issued before the cap was set.
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "merchant": public_id(session, shop),
        "monthly_issuance_cap": 100,
        "month": "2026-11",
        "issued": 30,
    }
    assert buy(client, till, card, 6000, "fits").status_code == 201  # 90 of 100
    refused = buy(client, till, card, 1100, "too-much")  # 11 more: 101
    assert refused.status_code == 422
    assert refused.get_json()["code"] == "issuance_cap_reached"
    assert refused.get_json()["left"] == 10
    # The welcome bonus (operator-funded) was not counted; exactly the cap is still allowed.
    assert buy(client, till, card, 1000, "exactly").status_code == 201
    assert client.get(url, headers=operator).get_json()["issued"] == 100
    assert (
        session.execute(
            select(func.count()).where(Transaction.external_id == "too-much")
        ).scalar_one()
        == 0
    )


def test_a_new_month_starts_a_new_budget_and_removing_the_cap_lifts_it(
    client, session, shop, till, operator, now
):
    card = card_of(session, f.member(session))
    url = f"/api/v1/ops/merchants/{public_id(session, shop)}/budget"
    client.put(url, json={"monthly_issuance_cap": 50}, headers=operator)
    assert buy(client, till, card, 5000, "nov").status_code == 201
    assert buy(client, till, card, 100, "nov-2").status_code == 422

    now[0] = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)  # 1 December in the coalition's zone
    assert buy(client, till, card, 5000, "dec").status_code == 201
    client.put(url, json={"monthly_issuance_cap": None}, headers=operator)
    assert buy(client, till, card, 100_000, "uncapped").status_code == 201


def test_the_cap_is_the_operators_and_in_the_audit_log(client, session, shop, till, operator):
    url = f"/api/v1/ops/merchants/{public_id(session, shop)}/budget"

    assert client.put(url, json={"monthly_issuance_cap": 10}, headers=till).status_code == 403
    bad = client.put(url, json={"monthly_issuance_cap": -1}, headers=operator)
    assert bad.status_code == 422
    assert client.put(url, json={"monthly_issuance_cap": 10}, headers=operator).status_code == 200
    assert (
        client.put(
            "/api/v1/ops/merchants/mer_nobody/budget",
            json={"monthly_issuance_cap": 1},
            headers=operator,
        ).status_code
        == 404
    )
    event = session.execute(select(AuditEvent.action, AuditEvent.before, AuditEvent.after)).one()
    assert event == (
        "merchant.budget",
        {"monthly_issuance_cap": None},
        {"monthly_issuance_cap": 10},
    )


def test_in_a_batch_only_the_lines_past_the_cap_are_refused(client, session, shop, till, operator):
    cards = [card_of(session, f.member(session)) for _ in range(3)]
    url = f"/api/v1/ops/merchants/{public_id(session, shop)}/budget"
    client.put(url, json={"monthly_issuance_cap": 100}, headers=operator)
    lines = [
        {"member": cards[0], "amount": 6000, "currency": "EUR", "external_id": "l-1"},
        {"member": cards[1], "amount": 6000, "currency": "EUR", "external_id": "l-2"},
        {"member": cards[2], "amount": 4000, "currency": "EUR", "external_id": "l-3"},
        {"member": cards[1], "amount": 6000, "currency": "EUR", "external_id": "l-2"},
    ]

    response = client.post("/api/v1/purchases/batch", json=lines, headers=till)

    results = response.get_json()["results"]
    assert [r["status"] for r in results] == [201, 422, 201, 422]
    assert results[1]["body"]["code"] == "issuance_cap_reached"
    assert client.get(url, headers=operator).get_json()["issued"] == 100


def test_concurrent_purchases_never_pass_the_cap(committed):
    """Twenty purchases of 30 points each at once against a cap of 200: six fit, never a
    seventh, whatever the interleaving (each waits on the month's counter row)."""
    moment = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
    with committed.app_context():
        shop = f.merchant(db.session, "Busy")
        members = [f.member(db.session) for _ in range(20)]
        cards = [card_of(db.session, m) for m in members]
        budgets.set_cap(db.session, public_id(db.session, shop), 200, moment)
        db.session.commit()

    def one(index: int):
        def act(session):
            with committed.app_context():
                return purchases.record_purchase(
                    session,
                    merchant_id=shop,
                    purchase={
                        "member": cards[index],
                        "amount": 3000,
                        "currency": "EUR",
                        "external_id": f"race-{index}",
                    },
                    actor=f.TILL,
                    now=moment,
                )

        return act

    counter = iter(range(20))
    outcomes = race(committed, 20, lambda session: one(next(counter))(session))

    kinds = Counter(type(o).__name__ for o in outcomes)
    assert kinds == {"PurchaseResult": 6, "IssuanceCapReached": 14}
    assert all(isinstance(o, IssuanceCapReached) for o in outcomes if not hasattr(o, "member"))
    with committed.app_context():
        assert budgets.usage(db.session, shop, moment).issued == 180
        earned = db.session.execute(
            select(func.count()).where(Transaction.merchant_id == shop)
        ).scalar_one()
        assert earned == 6
