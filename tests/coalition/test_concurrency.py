"""Races on PostgreSQL, each party on its own connection (QUALITY L1 and I1)."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coalition import idempotency
from coalition.extensions import db
from coalition.ledger import operations, reads
from coalition.ledger.models import Transaction
from tests import factories as f
from tests.factories import T0
from tests.races import race


def _arrange(app, points: int) -> tuple[int, int]:
    with app.app_context():
        shop, alice = f.merchant(db.session), f.member(db.session)
        f.purchase(db.session, alice, shop, points)
        db.session.commit()
    return shop, alice


def test_fifty_concurrent_redemptions_spend_exactly_what_the_member_has(committed):
    shop, alice = _arrange(committed, 1000)

    outcomes = race(committed, 50, lambda s: f.redeem(s, alice, shop, 30))

    kinds = Counter(type(o).__name__ for o in outcomes)
    assert kinds == {"dict": 33, "InsufficientPoints": 17}
    with committed.app_context():
        assert reads.balance(db.session, alice, T0)["balance"] == 10


def test_one_key_from_twenty_connections_has_one_effect(committed):
    shop, alice = _arrange(committed, 100)
    request = idempotency.fingerprint("POST", "/redemptions", {"points": 25})

    def redeem_with_key(session: Session) -> idempotency.Outcome:
        return idempotency.execute(
            session,
            scope=f"merchant:{shop}",
            key="till-7-receipt-31",
            request_fingerprint=request,
            operation=lambda: (201, f.redeem(session, alice, shop, 25)),
            now=T0,
        )

    outcomes = race(committed, 20, redeem_with_key)

    assert [o.replayed for o in outcomes].count(False) == 1
    assert all(o.status == 201 and o.body == outcomes[0].body for o in outcomes)
    with committed.app_context():
        assert reads.balance(db.session, alice, T0)["balance"] == 75
        redemptions = db.session.execute(
            select(func.count()).where(Transaction.__table__.c.type == "redeem")
        ).scalar_one()
        assert redemptions == 1


def test_racing_reversals_of_one_redemption_reverse_it_once(committed):
    shop, alice = _arrange(committed, 100)
    with committed.app_context():
        spent = f.redeem(db.session, alice, shop, 40)
        db.session.commit()

    outcomes = race(
        committed,
        10,
        lambda s: operations.reverse_redemption(
            s, redemption_id=spent["transaction"]["id"], merchant_id=shop, actor=f.TILL, now=T0
        ),
    )

    assert Counter(type(o).__name__ for o in outcomes) == {"dict": 1, "AlreadyReversed": 9}
    with committed.app_context():
        assert reads.balance(db.session, alice, T0)["balance"] == 100
