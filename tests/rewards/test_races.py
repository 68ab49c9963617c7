"""Races on PostgreSQL over HTTP, each request in its own thread, connection and transaction:
the last item of a reward ordered by 30 members at once is sold exactly once, and one voucher
accepted by 10 tills at once is accepted exactly once."""

from __future__ import annotations

from collections import Counter

from flask import Flask
from sqlalchemy import select

from coalition.extensions import db
from rewards import services
from rewards.models import orders, rewards
from tests import factories as f
from tests.merchants.test_redemption_race import race
from tests.rewards.helpers import member_with, reward


def test_the_last_item_ordered_by_thirty_members_at_once_is_sold_once(committed: Flask, make_app):
    with committed.app_context():
        session = db.session()
        shop = f.merchant(session, "Cafe")
        last = reward(session, shop, stock=1, points=50)
        apps = [
            f.member_headers(session, shop, member_with(session, shop, 100), "redeem")
            for _ in range(30)
        ]
        session.commit()
    live = make_app()

    answers = race(
        live,
        30,
        lambda client, n: client.post("/api/v1/me/orders", json={"reward": last}, headers=apps[n]),
    )

    outcomes = Counter("ordered" if status == 201 else body["code"] for status, body, _ in answers)
    assert outcomes == {"ordered": 1, "out_of_stock": 29}
    with committed.app_context():
        assert db.session.execute(select(rewards.c.stock)).scalar_one() == 0
        assert len(db.session.execute(select(orders.c.id)).all()) == 1
    # The committed fixture then verifies the ledger: only the one order spent points.


def test_one_voucher_accepted_by_ten_tills_at_once_is_accepted_once(committed: Flask, make_app):
    with committed.app_context():
        session = db.session()
        shop = f.merchant(session, "Books")
        voucher = reward(session, shop, kind="voucher", points=50)
        member = member_with(session, shop, 100)
        code = services.place_order(
            session, member_id=member, reward_id=voucher, quantity=1, now=f.T0
        ).voucher_code
        tills = [f.merchant_headers(session, shop, "rewards:write") for _ in range(10)]
        session.commit()
    live = make_app()

    answers = race(
        live,
        10,
        lambda client, n: client.post(f"/api/v1/vouchers/{code}/accept", headers=tills[n]),
    )

    outcomes = Counter("accepted" if status == 200 else body["code"] for status, body, _ in answers)
    assert outcomes == {"accepted": 1, "voucher_already_accepted": 9}
