"""Races over HTTP on PostgreSQL (QUALITY L1 and I1): many tills or apps at once, each request
in its own thread, connection and transaction, with real commits, against a live app."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from coalition import clock
from coalition.extensions import db
from coalition.ledger import reads
from coalition.ledger.models import Transaction
from coalition.members.models import Member
from tests import factories as f

Answer = tuple[int, dict[str, Any], bool]


def race(app: Flask, parties: int, call: Callable[[FlaskClient, int], Any]) -> list[Answer]:
    """`call(client, index)` from `parties` threads released together; each answer is
    (status, body, replayed)."""
    start = threading.Barrier(parties)
    answers: list[Any] = [None] * parties

    def party(index: int) -> None:
        client = app.test_client()
        start.wait()
        response = call(client, index)
        answers[index] = (
            response.status_code,
            response.get_json(force=True),
            response.headers.get("Idempotent-Replayed") == "true",
        )

    threads = [threading.Thread(target=party, args=(i,)) for i in range(parties)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a request never finished"
    return answers


def arrange(app: Flask, points: int, members: int = 1) -> dict[str, Any]:
    """A shop, members and tokens, committed; with `points`, each member bought that many at
    the shop (a first purchase, so without `points` they are still to be welcomed)."""
    with app.app_context():
        session = db.session()
        shop = f.merchant(session)
        people = [f.member(session) for _ in range(members)]
        for person in people:
            if points:
                f.purchase(session, person, shop, points)
        world = {
            "shop": shop,
            "members": people,
            "cards": [
                session.execute(select(Member.card_number).where(Member.id == person)).scalar_one()
                for person in people
            ],
            "till": f.merchant_headers(session, shop),
            "app": f.member_headers(session, shop, people[0], "redeem"),
        }
        session.commit()
    return world


def balance(app: Flask, member_id: int) -> int:
    with app.app_context():
        return reads.balance(db.session(), member_id, clock.utcnow())["balance"]


def transactions_of_type(app: Flask, type: str) -> int:
    with app.app_context():
        return db.session.execute(
            select(func.count()).where(Transaction.__table__.c.type == type)
        ).scalar_one()


def test_fifty_concurrent_redemptions_spend_exactly_what_the_member_has(committed, make_app):
    world = arrange(committed, 1000)
    live = make_app()

    answers = race(
        live,
        50,
        lambda client, n: client.post(
            "/api/v1/redemptions",
            json={"points": 30, "external_id": f"app-{n}"},
            headers=world["app"],
        ),
    )

    outcomes = Counter("spent" if status == 201 else body["code"] for status, body, _ in answers)
    assert outcomes == {"spent": 33, "insufficient_points": 17}
    assert balance(committed, world["members"][0]) == 10
    assert transactions_of_type(committed, "redeem") == 33
    # The committed fixture then verifies the ledger: the balance equals the entries.


def test_one_idempotency_key_from_twenty_connections_has_one_effect(committed, make_app):
    world = arrange(committed, 0)
    live = make_app()
    body = {"member": world["cards"][0], "amount": 2500, "currency": "EUR", "external_id": "r-1"}

    answers = race(
        live,
        20,
        lambda client, _: client.post(
            "/api/v1/purchases",
            json=body,
            headers={**world["till"], "Idempotency-Key": "till-7-receipt-31"},
        ),
    )

    first = [a for a in answers if a[0] == 201 and not a[2]]
    assert len(first) == 1
    for status, answer, replayed in answers:
        assert (status, answer) == first[0][:2] or (status, answer["code"]) == (
            409,
            "idempotency_conflict",
        )
        assert replayed or (status, answer) == first[0][:2]
    assert balance(committed, world["members"][0]) == 25 + 100
    assert transactions_of_type(committed, "earn") == 1


def test_one_receipt_sent_by_ten_tills_at_once_is_recorded_once(committed, make_app):
    world = arrange(committed, 0)
    live = make_app()
    body = {"member": world["cards"][0], "amount": 1000, "currency": "EUR", "external_id": "r-9"}

    answers = race(
        live,
        10,
        lambda client, _: client.post("/api/v1/purchases", json=body, headers=world["till"]),
    )

    statuses = Counter(status for status, _, _ in answers)
    assert statuses == {201: 1, 200: 9}
    assert len({str(answer) for _, answer, _ in answers}) == 1
    assert balance(committed, world["members"][0]) == 110


def test_one_receipt_claimed_for_different_members_at_once_goes_to_one(committed, make_app):
    world = arrange(committed, 0, members=8)
    live = make_app()

    answers = race(
        live,
        8,
        lambda client, n: client.post(
            "/api/v1/purchases",
            json={
                "member": world["cards"][n],
                "amount": 1000,
                "currency": "EUR",
                "external_id": "r-shared",
            },
            headers=world["till"],
        ),
    )

    outcomes = Counter("recorded" if status == 201 else body["code"] for status, body, _ in answers)
    assert outcomes == {"recorded": 1, "idempotency_conflict": 7}
    assert sum(balance(committed, m) for m in world["members"]) == 110


def test_batches_and_single_purchases_racing_on_receipts_record_each_once(committed, make_app):
    world = arrange(committed, 0, members=5)
    live = make_app()
    receipts = [
        {
            "member": world["cards"][n % 5],
            "amount": 100 * (n + 1),
            "currency": "EUR",
            "external_id": f"r-{n}",
        }
        for n in range(20)
    ]

    def send(client: FlaskClient, index: int) -> Any:
        if index % 2:
            return client.post("/api/v1/purchases/batch", json=receipts, headers=world["till"])
        return client.post("/api/v1/purchases", json=receipts[index], headers=world["till"])

    answers = race(live, 8, send)

    assert all(status in (200, 201) for status, _, _ in answers)
    for _, body, _ in answers:
        if "results" in body:
            assert {r["status"] for r in body["results"]} <= {200, 201}
    assert transactions_of_type(committed, "earn") == 20
    expected = sum((n + 1) for n in range(20)) + 5 * 100
    assert sum(balance(committed, m) for m in world["members"]) == expected


def _bought(app: Flask, members: int) -> dict[str, Any]:
    """A shop and members who each bought 100 points there (100.00 EUR), committed."""
    with app.app_context():
        session = db.session()
        shop = f.merchant(session)
        people = [f.member(session) for _ in range(members)]
        purchases = [f.purchase(session, p, shop, 100)["transaction"]["id"] for p in people]
        world = {
            "members": people,
            "purchases": purchases,
            "till": f.merchant_headers(session, shop),
        }
        session.commit()
    return world


def test_one_refund_retried_by_ten_connections_at_once_claws_back_once(committed, make_app):
    world = _bought(committed, 1)
    live = make_app()
    refund = f"/api/v1/purchases/{world['purchases'][0]}/refunds"

    answers = race(
        live,
        10,
        lambda client, _: client.post(
            refund, json={"amount": 4000, "external_id": "return-3"}, headers=world["till"]
        ),
    )

    assert Counter(status for status, _, _ in answers) == {201: 1, 200: 9}
    assert len({str(answer) for _, answer, _ in answers}) == 1
    assert answers[0][1]["points_clawed_back"] == 40
    assert balance(committed, world["members"][0]) == 60
    assert transactions_of_type(committed, "refund") == 1


def test_one_return_receipt_claimed_for_different_purchases_at_once_goes_to_one(
    committed, make_app
):
    world = _bought(committed, 6)
    live = make_app()

    answers = race(
        live,
        6,
        lambda client, n: client.post(
            f"/api/v1/purchases/{world['purchases'][n]}/refunds",
            json={"amount": 4000, "external_id": "return-shared"},
            headers=world["till"],
        ),
    )

    outcomes = Counter("refunded" if status == 201 else body["code"] for status, body, _ in answers)
    assert outcomes == {"refunded": 1, "idempotency_conflict": 5}
    assert sum(balance(committed, m) for m in world["members"]) == 6 * 100 - 40
    assert transactions_of_type(committed, "refund") == 1


def test_one_redemption_id_claimed_by_different_members_at_once_goes_to_one(committed, make_app):
    world = arrange(committed, 100, members=6)
    with committed.app_context():
        session = db.session()
        apps = [f.member_headers(session, world["shop"], m, "redeem") for m in world["members"]]
        session.commit()
    live = make_app()

    answers = race(
        live,
        6,
        lambda client, n: client.post(
            "/api/v1/redemptions",
            json={"points": 30, "external_id": "pos-shared"},
            headers=apps[n],
        ),
    )

    outcomes = Counter("spent" if status == 201 else body["code"] for status, body, _ in answers)
    assert outcomes == {"spent": 1, "idempotency_conflict": 5}
    assert sum(balance(committed, m) for m in world["members"]) == 6 * 100 - 30
    assert transactions_of_type(committed, "redeem") == 1


def test_first_purchases_at_many_shops_at_once_give_one_welcome_bonus(committed, make_app):
    """SPEC 2: the welcome bonus comes with a member's first purchase anywhere. Six shops'
    tills send that member's first purchase at the same moment: one of them carries the bonus."""
    with committed.app_context():
        session = db.session()
        shops = [f.merchant(session, f"Shop {n}") for n in range(6)]
        member = f.member(session)
        card = session.execute(select(Member.card_number).where(Member.id == member)).scalar_one()
        tills = [f.merchant_headers(session, shop) for shop in shops]
        session.commit()
    live = make_app()

    answers = race(
        live,
        6,
        lambda client, n: client.post(
            "/api/v1/purchases",
            json={"member": card, "amount": 1000, "currency": "EUR", "external_id": f"first-{n}"},
            headers=tills[n],
        ),
    )

    assert [status for status, _, _ in answers] == [201] * 6
    welcomes = [body["transaction"]["breakdown"]["welcome"] for _, body, _ in answers]
    assert sorted(welcomes) == [0, 0, 0, 0, 0, 100]
    assert balance(committed, member) == 6 * 10 + 100
