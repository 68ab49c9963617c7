"""The catalogue's API (SPEC 3.3-3.5): a merchant lists and changes its own rewards, members
browse the whole catalogue (filtered, paginated), order with points, cancel; the supplier lists
its orders, fulfils them and accepts vouchers once. Another merchant's listing, order or voucher
is 404, as if it did not exist."""

from __future__ import annotations

import re

from sqlalchemy import select

from coalition.ledger.models import Transaction
from rewards.models import orders, rewards
from tests import factories
from tests.ledger_helpers import events, lots_of
from tests.rewards.helpers import GIFT, member_with, reward

API_GIFT = {k: v for k, v in GIFT.items() if v is not None}


def _balance(client, headers):
    return client.get("/api/v1/me/balance", headers=headers).json["points"]


def test_a_merchant_lists_changes_and_reads_only_its_own_rewards(client, session):
    shop, other = factories.merchant(session, "Cafe"), factories.merchant(session, "Books")
    till = factories.merchant_headers(session, shop, "rewards:write")
    theirs = factories.merchant_headers(session, other, "rewards:write")

    created = client.post(
        "/api/v1/rewards",
        headers=till,
        json={
            **API_GIFT,
            "stock": 5,
            "cost_price": {"amount": 250, "currency": "EUR"},
            "description": "White porcelain.\nDishwasher safe.",
        },
    )
    assert created.status_code == 201, created.json
    body = created.json
    assert body["description"] == "White porcelain.\nDishwasher safe."
    assert body["id"].startswith("rwd_")
    assert body["cost_price"] == {"amount": 250, "currency": "EUR"}
    assert body["stock"] == 5 and body["supplier"]["name"] == "Cafe"

    changed = client.put(
        f"/api/v1/rewards/{body['id']}", headers=till, json={**API_GIFT, "points": 350}
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["points"] == 350 and changed.json["stock"] is None

    listed = client.get("/api/v1/rewards", headers=till).json
    assert [r["id"] for r in listed["data"]] == [body["id"]]
    assert client.get("/api/v1/rewards", headers=theirs).json["data"] == []
    assert client.get(f"/api/v1/rewards/{body['id']}", headers=theirs).status_code == 404
    refused = client.put(f"/api/v1/rewards/{body['id']}", headers=theirs, json=API_GIFT)
    assert refused.status_code == 404
    assert session.execute(select(rewards.c.points)).scalar_one() == 350


def test_bad_listings_are_refused_with_nothing_written(client, session):
    shop = factories.merchant(session)
    till = factories.merchant_headers(session, shop, "rewards:write")
    bad = [
        {**API_GIFT, "kind": "lottery"},
        {**API_GIFT, "points": 0},
        {**API_GIFT, "stock": -1},
        {**API_GIFT, "cost_price": {"amount": 100, "currency": "USD"}},
        {**API_GIFT, "valid_from": "2026-05-01T00:00:00Z", "valid_until": "2026-04-01T00:00:00Z"},
        {**API_GIFT, "merchant_id": 1},
        {**API_GIFT, "description": "bell\x07"},
        {k: v for k, v in API_GIFT.items() if k != "name"},
    ]
    for body in bad:
        answer = client.post("/api/v1/rewards", headers=till, json=body)
        assert answer.status_code == 422, (body, answer.json)
        assert answer.json["code"] == "validation_error"
    assert session.execute(select(rewards.c.id)).all() == []


def test_members_see_the_whole_catalogue_filtered_without_cost_prices(client, session):
    cafe, books = factories.merchant(session, "Cafe"), factories.merchant(session, "Books")
    cup = reward(session, cafe, cost_price={"amount": 250, "currency": "EUR"})
    novel = reward(session, books, name="A novel", category="books", points=900)
    trip = reward(session, None, name="Balloon ride", kind="experience", points=5000)
    reward(session, cafe, name="Sold out", stock=0)
    reward(session, cafe, name="Over", valid_until=factories.T0)
    member = member_with(session, cafe, 10)
    app = factories.member_headers(session, cafe, member)

    everything = client.get("/api/v1/rewards", headers=app).json
    assert {r["id"] for r in everything["data"]} == {cup, novel, trip}
    assert all("cost_price" not in r for r in everything["data"])
    by_category = client.get("/api/v1/rewards?category=books", headers=app).json["data"]
    assert [r["id"] for r in by_category] == [novel]
    books_id = novel and by_category[0]["supplier"]["id"]
    by_supplier = client.get(f"/api/v1/rewards?supplier={books_id}", headers=app).json["data"]
    assert [r["id"] for r in by_supplier] == [novel]
    operator = client.get("/api/v1/rewards?supplier=operator", headers=app).json["data"]
    assert [r["id"] for r in operator] == [trip]
    cheap = client.get("/api/v1/rewards?max_points=1000", headers=app).json["data"]
    assert {r["id"] for r in cheap} == {cup, novel}
    first = client.get("/api/v1/rewards?limit=2", headers=app).json
    second = client.get(f"/api/v1/rewards?limit=2&cursor={first['next_cursor']}", headers=app)
    assert len(first["data"]) == 2 and second.json["next_cursor"] is None
    assert {r["id"] for r in first["data"] + second.json["data"]} == {cup, novel, trip}


def test_a_member_orders_a_gift_the_supplier_fulfils_it_and_hears_of_it(client, session):
    cafe, books = factories.merchant(session, "Cafe"), factories.merchant(session, "Books")
    cup = reward(session, books, stock=3, cost_price={"amount": 250, "currency": "EUR"})
    member = member_with(session, cafe, 1000)
    app = factories.member_headers(session, cafe, member)
    supplier = factories.merchant_headers(session, books, "rewards:write")
    stranger = factories.merchant_headers(session, cafe, "rewards:write")

    placed = client.post("/api/v1/me/orders", headers=app, json={"reward": cup, "quantity": 2})
    assert placed.status_code == 201, placed.json
    order = placed.json
    assert order["id"].startswith("ord_") and order["reward"] == cup
    assert (order["status"], order["points"], order["quantity"]) == ("pending", 600, 2)
    assert "voucher_code" not in order
    assert _balance(client, app) == 1000 - 600
    # The order is a redemption whose redeemer is the supplier, at its cost price for two.
    paid = session.execute(
        select(
            Transaction.type,
            Transaction.purpose,
            Transaction.merchant_id,
            Transaction.points,
            orders.c.cost_price_minor,
        ).join(orders, orders.c.transaction_id == Transaction.id)
    ).one()
    assert tuple(paid) == ("redeem", "order", books, 600, 500)
    # Not a till's redemption: the order announces itself.
    assert events(session, "redemption.created") == []
    assert session.execute(select(rewards.c.stock)).scalar_one() == 1

    assert client.get("/api/v1/orders", headers=stranger).json["data"] == []
    assert client.post(f"/api/v1/orders/{order['id']}/fulfil", headers=stranger).status_code == 404
    listed = client.get("/api/v1/orders?status=pending", headers=supplier).json["data"]
    assert [o["id"] for o in listed] == [order["id"]]
    assert listed[0]["member"].startswith("mbr_")
    fulfilled = client.post(f"/api/v1/orders/{order['id']}/fulfil", headers=supplier)
    assert fulfilled.status_code == 200 and fulfilled.json["status"] == "fulfilled"
    again = client.post(f"/api/v1/orders/{order['id']}/fulfil", headers=supplier)
    assert (again.status_code, again.json["code"]) == (409, "order_not_pending")
    late = client.post(f"/api/v1/me/orders/{order['id']}/cancel", headers=app)
    assert (late.status_code, late.json["code"]) == (409, "order_not_pending")

    created, done = events(session, "order.created"), events(session, "order.fulfilled")
    assert [e["order"]["id"] for e in created] == [order["id"]]
    assert [e["order"]["status"] for e in done] == ["fulfilled"]
    mine = client.get("/api/v1/me/orders", headers=app).json["data"]
    assert [(o["id"], o["status"]) for o in mine] == [(order["id"], "fulfilled")]


def test_a_cancel_gives_the_points_back_to_the_very_lots_and_the_stock_back(client, session):
    cafe, books = factories.merchant(session, "Cafe"), factories.merchant(session, "Books")
    cup = reward(session, books, stock=1)
    member = factories.member(session)
    factories.purchase(session, member, cafe, 200, expires_at=factories.T0 + factories.LIFETIME)
    factories.purchase(session, member, books, 200)
    app = factories.member_headers(session, cafe, member)
    before = lots_of(session, member)

    order = client.post("/api/v1/me/orders", headers=app, json={"reward": cup}).json
    assert lots_of(session, member) != before
    sold_out = client.post("/api/v1/me/orders", headers=app, json={"reward": cup})
    assert (sold_out.status_code, sold_out.json["code"]) == (409, "out_of_stock")

    cancelled = client.post(f"/api/v1/me/orders/{order['id']}/cancel", headers=app)
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["status"] == "cancelled"
    assert lots_of(session, member) == before
    assert session.execute(select(rewards.c.stock)).scalar_one() == 1
    twice = client.post(f"/api/v1/me/orders/{order['id']}/cancel", headers=app)
    assert (twice.status_code, twice.json["code"]) == (409, "order_not_pending")
    assert [e["order"]["cancelled_by"] for e in events(session, "order.cancelled")] == ["member"]


def test_an_order_the_member_cannot_afford_leaves_nothing_behind(client, session):
    shop = factories.merchant(session)
    cup = reward(session, shop, stock=2, points=5000)
    member = member_with(session, shop, 100)
    app = factories.member_headers(session, shop, member)

    refused = client.post("/api/v1/me/orders", headers=app, json={"reward": cup})

    assert (refused.status_code, refused.json["code"]) == (422, "insufficient_points")
    assert session.execute(select(rewards.c.stock)).scalar_one() == 2
    assert session.execute(select(orders.c.id)).all() == []


def test_a_voucher_is_accepted_once_by_its_supplier_only(client, session):
    cafe, books = factories.merchant(session, "Cafe"), factories.merchant(session, "Books")
    voucher = reward(session, books, kind="voucher", name="10 EUR off")
    member = member_with(session, cafe, 1000)
    app = factories.member_headers(session, cafe, member)
    supplier = factories.merchant_headers(session, books, "rewards:write")
    stranger = factories.merchant_headers(session, cafe, "rewards:write")

    order = client.post("/api/v1/me/orders", headers=app, json={"reward": voucher}).json
    code = order["voucher_code"]
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}", code)
    assert "voucher_code" not in client.get("/api/v1/orders", headers=supplier).json["data"][0]
    two = client.post("/api/v1/me/orders", headers=app, json={"reward": voucher, "quantity": 2})
    assert two.status_code == 422

    assert client.post(f"/api/v1/vouchers/{code}/accept", headers=stranger).status_code == 404
    fulfil = client.post(f"/api/v1/orders/{order['id']}/fulfil", headers=supplier)
    assert (fulfil.status_code, fulfil.json["code"]) == (409, "voucher_order")
    typed = code.replace("-", "").lower().replace("0", "o")
    accepted = client.post(f"/api/v1/vouchers/{typed}/accept", headers=supplier)
    assert accepted.status_code == 200, accepted.json
    assert accepted.json["status"] == "fulfilled" and accepted.json["voucher_accepted_at"]
    second = client.post(f"/api/v1/vouchers/{code}/accept", headers=supplier)
    assert (second.status_code, second.json["code"]) == (409, "voucher_already_accepted")
    assert (
        client.post("/api/v1/vouchers/0000-0000-0000-0000/accept", headers=supplier).status_code
        == 404
    )
    assert [e["order"]["id"] for e in events(session, "voucher.accepted")] == [order["id"]]


def test_two_members_codes_differ_and_a_member_cannot_cancel_anothers_order(client, session):
    shop = factories.merchant(session)
    voucher = reward(session, shop, kind="voucher", points=10)
    first, second = member_with(session, shop, 100), member_with(session, shop, 100)
    one = factories.member_headers(session, shop, first)
    two = factories.member_headers(session, shop, second)

    a = client.post("/api/v1/me/orders", headers=one, json={"reward": voucher}).json
    b = client.post("/api/v1/me/orders", headers=two, json={"reward": voucher}).json

    assert a["voucher_code"] != b["voucher_code"]
    assert client.post(f"/api/v1/me/orders/{a['id']}/cancel", headers=two).status_code == 404
    assert [o["id"] for o in client.get("/api/v1/me/orders", headers=two).json["data"]] == [b["id"]]


def test_the_operator_lists_its_own_rewards_apart_from_merchants(client, session):
    shop = factories.merchant(session)
    merchants_reward = reward(session, shop)
    ops = factories.operator_headers(session)

    created = client.post("/api/v1/ops/rewards", headers=ops, json={**API_GIFT, "name": "Mug"})
    assert created.status_code == 201, created.json
    assert created.json["supplier"] == {"id": None, "name": None}
    listed = client.get("/api/v1/ops/rewards", headers=ops).json["data"]
    assert [r["id"] for r in listed] == [created.json["id"]]
    refused = client.put(f"/api/v1/ops/rewards/{merchants_reward}", headers=ops, json=API_GIFT)
    assert refused.status_code == 404
    changed = client.put(
        f"/api/v1/ops/rewards/{created.json['id']}", headers=ops, json={**API_GIFT, "stock": 9}
    )
    assert changed.json["stock"] == 9


def test_a_member_orders_the_operators_reward_and_cancels_it(client, session):
    shop = factories.merchant(session)
    ops = factories.operator_headers(session)
    ride = client.post(
        "/api/v1/ops/rewards", headers=ops, json={**API_GIFT, "kind": "experience", "points": 200}
    ).json["id"]
    member = member_with(session, shop, 500)
    app = factories.member_headers(session, shop, member)
    before = lots_of(session, member)

    order = client.post("/api/v1/me/orders", headers=app, json={"reward": ride})
    assert order.status_code == 201, order.json
    assert order.json["supplier"] == {"id": None, "name": None}
    paid = session.execute(
        select(Transaction.merchant_id, Transaction.purpose).where(Transaction.type == "redeem")
    ).one()
    assert tuple(paid) == (None, "order")
    # The operator's orders are no merchant's: none lists them.
    supplier_view = factories.merchant_headers(session, shop, "rewards:write")
    assert client.get("/api/v1/orders", headers=supplier_view).json["data"] == []

    cancelled = client.post(f"/api/v1/me/orders/{order.json['id']}/cancel", headers=app)
    assert cancelled.status_code == 200, cancelled.json
    assert lots_of(session, member) == before
