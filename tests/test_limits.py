"""Limits and what survives Redis (QUALITY S5, I2): a client past its rate gets 429, and an
idempotency key lives in PostgreSQL with its effect, so flushing Redis between a request and its
retry changes nothing."""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask
from sqlalchemy import func, select

from coalition.extensions import db
from coalition.ledger.models import Transaction
from tests.merchants.test_redemption_race import arrange


def _purchase(card: str, receipt: str) -> dict[str, Any]:
    return {"member": card, "amount": 2000, "currency": "EUR", "external_id": receipt}


def test_a_client_past_its_rate_gets_429_and_another_client_does_not(
    committed: Flask, make_app: Any, redis_url: str
) -> None:
    world = arrange(committed, 0)
    other = arrange(committed, 0)
    strict = make_app(RATE_LIMIT_CLIENT="3/minute", REDIS_URL=redis_url).test_client()

    answers = [
        strict.get("/api/v1/transactions", headers=world["till"]).status_code for _ in range(4)
    ]
    refused = strict.get("/api/v1/transactions", headers=world["till"])

    assert answers == [200, 200, 200, 429]
    assert refused.mimetype == "application/problem+json"
    assert refused.json["code"] == "rate_limited"
    assert strict.get("/api/v1/transactions", headers=other["till"]).status_code == 200


def test_flushing_redis_between_a_request_and_its_retry_changes_nothing(
    committed: Flask, make_app: Any, redis_url: str
) -> None:
    world = arrange(committed, 0)
    live = make_app(REDIS_URL=redis_url).test_client()
    headers = {**world["till"], "Idempotency-Key": "receipt-77"}
    # The key is kept apart from the body's external_id, so only the key can replay it.
    first = live.post(
        "/api/v1/purchases", json=_purchase(world["cards"][0], "r-77"), headers=headers
    )

    redis.Redis.from_url(redis_url).flushdb()
    retry = live.post(
        "/api/v1/purchases", json=_purchase(world["cards"][0], "r-77"), headers=headers
    )

    assert first.status_code == 201
    assert (retry.status_code, retry.json) == (201, first.json)
    assert retry.headers["Idempotent-Replayed"] == "true"
    with committed.app_context():
        earns = db.session.execute(
            select(func.count()).where(Transaction.__table__.c.type == "earn")
        ).scalar_one()
    assert earns == 1  # recorded once
