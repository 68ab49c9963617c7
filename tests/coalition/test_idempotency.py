"""Idempotency keys at the service level (SPEC 3.1, Stripe's semantics)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from coalition import idempotency
from coalition.errors import IdempotencyConflict, InvalidRequest
from coalition.ledger import reads
from coalition.ledger.models import Transaction
from tests import factories as f
from tests.factories import T0

pytestmark = pytest.mark.both_backends


def _redeem_once(session, scope, key, member_id, merchant_id, points, now=T0):
    return idempotency.execute(
        session,
        scope=scope,
        key=key,
        request_fingerprint=idempotency.fingerprint("POST", "/redemptions", {"points": points}),
        operation=lambda: (201, f.redeem(session, member_id, merchant_id, points, now=now)),
        now=now,
    )


def _redemptions(session):
    return session.execute(
        select(func.count()).where(Transaction.__table__.c.type == "redeem")
    ).scalar_one()


def test_a_retry_with_the_same_key_replays_the_first_result_without_a_second_effect(session):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 100)

    first = _redeem_once(session, "merchant:1", "key-1", alice, shop, 30)
    again = _redeem_once(session, "merchant:1", "key-1", alice, shop, 30)

    assert (first.status, first.replayed) == (201, False)
    assert (again.status, again.body, again.replayed) == (201, first.body, True)
    assert reads.balance(session, alice, T0)["balance"] == 70
    assert _redemptions(session) == 1


def test_the_same_key_with_another_request_is_a_conflict_and_changes_nothing(session):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 100)
    _redeem_once(session, "merchant:1", "key-1", alice, shop, 30)

    with pytest.raises(IdempotencyConflict):
        _redeem_once(session, "merchant:1", "key-1", alice, shop, 31)
    assert reads.balance(session, alice, T0)["balance"] == 70


def test_a_refusal_is_stored_and_replayed_like_a_success(session):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 10)

    refused = _redeem_once(session, "merchant:1", "key-1", alice, shop, 30)
    f.purchase(session, alice, shop, 100)  # now affordable, but the key already has its answer
    replayed = _redeem_once(session, "merchant:1", "key-1", alice, shop, 30)

    assert refused.status == 422 and refused.body["code"] == "insufficient_points"
    assert (replayed.status, replayed.body, replayed.replayed) == (422, refused.body, True)
    assert _redemptions(session) == 0


def test_two_tenants_may_use_the_same_key(session):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 100)

    mine = _redeem_once(session, "merchant:1", "shared", alice, shop, 10)
    theirs = _redeem_once(session, "merchant:2", "shared", alice, shop, 10)

    assert not mine.replayed and not theirs.replayed
    assert _redemptions(session) == 2


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_a_key_must_be_one_to_255_characters(session, key):
    with pytest.raises(InvalidRequest):
        idempotency.execute(
            session,
            scope="s",
            key=key,
            request_fingerprint="x",
            operation=lambda: (200, {}),
            now=T0,
        )


def test_keys_are_forgotten_after_their_lifetime(session):
    idempotency.execute(
        session,
        scope="s",
        key="old",
        request_fingerprint="a",
        operation=lambda: (200, {"n": 1}),
        now=T0,
    )

    assert idempotency.purge(session, T0 + idempotency.KEY_LIFETIME) == 0
    assert idempotency.purge(session, T0 + idempotency.KEY_LIFETIME + timedelta(seconds=1)) == 1
    fresh = idempotency.execute(
        session,
        scope="s",
        key="old",
        request_fingerprint="b",
        operation=lambda: (200, {"n": 2}),
        now=T0,
    )
    assert fresh.body == {"n": 2} and not fresh.replayed
