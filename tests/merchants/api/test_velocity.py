"""Velocity limits (issue 13 point 9, SPEC 3.10): the operator caps what one member may spend in
any 24 hours and what members may spend at one merchant in any hour. A spending over a limit is
`429 velocity_limit_exceeded` with `Retry-After`, changes nothing, and leaves a fraud event that
only the operator sees, on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from coalition import clock, economics, tenancy
from coalition.fraud.models import FraudEvent
from coalition.ledger.models import Hold, Transaction
from coalition.members import codes
from coalition.members.models import Member
from merchants.models import Merchant
from tests import factories as f
from tests.merchants.api.test_points import (
    HOLDS,
    REDEMPTIONS,
    balance,
    card_of,
    code_of,
    count,
    problem,
)

pytestmark = pytest.mark.both_backends

DAY = 24 * 3600


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The API's clock, frozen at the start of a code step (a test moves it by hand)."""
    wall = datetime.now(UTC).replace(microsecond=0)
    moment = [wall - timedelta(seconds=wall.second % codes.STEP_SECONDS)]
    monkeypatch.setattr(clock, "utcnow", lambda: moment[0])
    return moment


@pytest.fixture
def shop(session: Session) -> int:
    return f.merchant(session, "Bakery")


def till_of(session: Session, merchant_id: int) -> dict[str, str]:
    """A till whose token outlives the tests' travels in time."""
    scope = "redemptions:write"
    client_id = f.client(session, merchant_id, scope)["client_id"]
    return f.bearer(session, client_id, scope, expires_in=timedelta(days=30))


@pytest.fixture
def till(session: Session, shop: int, now: list[datetime]) -> dict[str, str]:
    return till_of(session, shop)


def limits(session: Session, *, member: int | None = None, merchant: int | None = None) -> None:
    """The coalition's terms from the very first day, with these limits."""
    terms = economics.coalition_terms(session, date.today()).to_json()
    economics.set_version(
        session,
        effective_from=economics.BEGINNING,
        settings=terms
        | {"member_daily_points_limit": member, "merchant_hourly_points_limit": merchant},
        merchant_id=None,
        actor_id="test",
        now=clock.utcnow(),
    )


def funded(session: Session, shop: int, points: int = 1000) -> int:
    member = f.member(session)
    f.purchase(session, member, shop, points)
    return member


def redeem(client, session, till, member: int, points: int, ref: str, **headers: str):
    return client.post(
        REDEMPTIONS,
        json={
            "member": card_of(session, member),
            "code": code_of(session, member, clock.utcnow()),
            "points": points,
            "external_id": ref,
        },
        headers={**till, **headers},
    )


def fraud_events(session: Session) -> list[Any]:
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return list(
            session.execute(
                select(
                    FraudEvent.kind,
                    FraudEvent.member_id,
                    FraudEvent.merchant_id,
                    FraudEvent.details,
                ).order_by(FraudEvent.id)
            ).all()
        )


def step(now: list, seconds: int) -> None:
    """Move the API's clock on, to the start of a code step (each code is used once)."""
    now[0] += timedelta(seconds=seconds)


def test_a_member_over_its_daily_limit_is_refused_everywhere_and_it_is_recorded(
    session,
    client,
    shop,
    till,
    now,
):
    alice = funded(session, shop)
    butcher = f.merchant(session, "Butcher")
    limits(session, member=300)

    first = redeem(client, session, till, alice, 200, "r-1")
    step(now, 3600)
    refused = redeem(client, session, till, alice, 150, "r-2")
    step(now, 30)
    elsewhere = redeem(client, session, till_of(session, butcher), alice, 150, "r-3")
    step(now, 30)
    fits = redeem(client, session, till, alice, 100, "r-4")

    assert first.status_code == 201 and fits.status_code == 201
    body = problem(refused, 429, "velocity_limit_exceeded")
    assert body["limit"] == "member" and body["limit_points"] == 300
    # The first 200 points leave the 24 hours 23 hours from the refusal.
    assert refused.headers["Retry-After"] == str(DAY - 3600) == str(body["retry_after"])
    assert problem(elsewhere, 429, "velocity_limit_exceeded")["limit"] == "member"
    assert balance(session, alice) == 700
    assert count(session, Transaction) == 1 + 2  # the purchase and two redemptions
    events = fraud_events(session)
    assert [(e.kind, e.member_id, e.merchant_id) for e in events] == [
        ("member_velocity", alice, shop),
        ("member_velocity", alice, butcher),
    ]
    assert events[0].details == {
        "limit_points": 300,
        "window_hours": 24,
        "spent_points": 200,
        "asked_points": 150,
    }

    step(now, DAY)
    assert redeem(client, session, till, alice, 300, "r-5").status_code == 201


def test_a_merchant_over_its_hourly_limit_is_refused_for_every_member_there(
    session,
    client,
    shop,
    till,
    now,
):
    alice, bob = funded(session, shop), funded(session, shop)
    butcher = f.merchant(session, "Butcher")
    limits(session, merchant=250)

    spent = redeem(client, session, till, alice, 200, "r-1")
    step(now, 30)
    refused = redeem(client, session, till, bob, 100, "r-2")
    step(now, 30)
    elsewhere = redeem(client, session, till_of(session, butcher), bob, 100, "r-3")

    assert spent.status_code == 201 and elsewhere.status_code == 201
    body = problem(refused, 429, "velocity_limit_exceeded")
    assert body["limit"] == "merchant"
    assert refused.headers["Retry-After"] == str(3600 - 30)
    assert balance(session, bob) == 900
    [event] = fraud_events(session)
    assert (event.kind, event.member_id, event.merchant_id) == ("merchant_velocity", bob, shop)


def test_a_merchant_may_have_a_limit_of_its_own(session, client, shop, till, now):
    alice = funded(session, shop)
    limits(session, merchant=10_000)
    economics.set_version(
        session,
        effective_from=economics.BEGINNING,
        settings={"merchant_hourly_points_limit": 50},
        merchant_id=shop,
        actor_id="test",
        now=clock.utcnow(),
    )

    problem(redeem(client, session, till, alice, 60, "r-1"), 429, "velocity_limit_exceeded")


def test_a_spending_larger_than_the_limit_itself_gets_no_retry_after(
    session,
    client,
    shop,
    till,
    now,
):
    alice = funded(session, shop)
    limits(session, member=100)

    refused = redeem(client, session, till, alice, 101, "r-1")

    body = problem(refused, 429, "velocity_limit_exceeded")
    assert "Retry-After" not in refused.headers and "retry_after" not in body


def test_holds_and_their_captures_count_against_the_limit(
    session,
    client,
    shop,
    till,
    now,
):
    alice = funded(session, shop)
    limits(session, member=300)

    held = client.post(
        HOLDS,
        json={
            "member": card_of(session, alice),
            "code": code_of(session, alice, now[0]),
            "points": 200,
            "ttl_seconds": 3600,
        },
        headers=till,
    )
    hold_id = held.get_json()["hold"]["id"]
    step(now, 30)
    assert redeem(client, session, till, alice, 150, "r-1").status_code == 201
    step(now, 30)
    too_big = client.post(
        HOLDS,
        json={
            "member": card_of(session, alice),
            "code": code_of(session, alice, now[0]),
            "points": 200,
        },
        headers=till,
    )
    capture = client.post(f"{HOLDS}/{hold_id}/capture", json={}, headers=till)
    partial = client.post(f"{HOLDS}/{hold_id}/capture", json={"points": 150}, headers=till)

    assert held.status_code == 201
    problem(too_big, 429, "velocity_limit_exceeded")
    problem(capture, 429, "velocity_limit_exceeded")
    assert partial.status_code == 201
    assert partial.get_json()["transaction"]["points"] == 150
    assert balance(session, alice) == 700
    assert count(session, Hold) == 1
    assert [e.kind for e in fraud_events(session)] == ["member_velocity"] * 2


def test_a_refusal_under_an_idempotency_key_is_not_replayed_once_the_spending_fits(
    session,
    client,
    shop,
    till,
    now,
):
    alice = funded(session, shop)
    limits(session, member=100)
    assert redeem(client, session, till, alice, 100, "r-1").status_code == 201
    step(now, 30)

    refused = redeem(client, session, till, alice, 50, "r-2", **{"Idempotency-Key": "k-1"})
    step(now, DAY)
    retried = redeem(client, session, till, alice, 50, "r-2", **{"Idempotency-Key": "k-1"})
    again = redeem(client, session, till, alice, 50, "r-2", **{"Idempotency-Key": "k-1"})

    problem(refused, 429, "velocity_limit_exceeded")
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert balance(session, alice) == 850
    assert len(fraud_events(session)) == 1


def test_no_limit_by_default(session, client, shop, till, now):
    alice = funded(session, shop, 100_000)

    assert redeem(client, session, till, alice, 100_000, "r-1").status_code == 201
    assert fraud_events(session) == []


def test_the_operator_lists_fraud_events_and_a_merchant_reaches_none(
    session,
    client,
    shop,
    till,
    now,
    backend,
):
    alice = funded(session, shop)
    limits(session, member=10)
    problem(redeem(client, session, till, alice, 20, "r-1"), 429, "velocity_limit_exceeded")

    listed = client.get("/api/v1/ops/fraud-events", headers=f.operator_headers(session))
    by_merchant = client.get("/api/v1/ops/fraud-events", headers=till)

    assert listed.status_code == 200
    [event] = listed.get_json()["data"]
    alice_id = session.execute(select(Member.public_id).where(Member.id == alice)).scalar_one()
    shop_id = session.execute(select(Merchant.public_id).where(Merchant.id == shop)).scalar_one()
    assert (event["kind"], event["member"], event["merchant"]) == (
        "member_velocity",
        alice_id,
        shop_id,
    )
    assert event["details"]["asked_points"] == 20
    assert by_merchant.status_code == 403
    if backend == "postgresql":
        with tenancy.acting_as(tenancy.Tenant.merchant(shop), session):
            seen = session.execute(text("SELECT count(*) FROM fraud_events")).scalar_one()
        assert seen == 0
