"""A member, through a partner's app, checks one balance across every shop, sees what expires
when and where its points came from and went, pages through its history, and shows its
rotating code at a till."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from coalition import clock
from coalition.database import table
from coalition.ledger import expiry, holds, operations
from coalition.ledger.rows import Actor
from coalition.members import codes
from coalition.members.models import Member
from tests import factories as f
from tests.factories import T0, TILL

pytestmark = pytest.mark.both_backends
members = table(Member)
ROUTES = ("/api/v1/me", "/api/v1/me/balance", "/api/v1/me/transactions", "/api/v1/me/code")

# Expiry moments around one Berlin business day (the test settings' COALITION_TIMEZONE).
MARCH_1 = datetime(2028, 3, 1, 10, 0, tzinfo=UTC)  # 11:00 in Berlin, 1 March
MARCH_1_NOON = MARCH_1 + timedelta(hours=2)
MARCH_1_LATE_UTC = datetime(2028, 3, 1, 23, 30, tzinfo=UTC)  # 00:30 on 2 March in Berlin
JUNE_1 = datetime(2028, 6, 1, 10, 0, tzinfo=UTC)


def _public_id(session: Session, member_id: int) -> str:
    return session.execute(
        select(members.c.public_id).where(members.c.id == member_id)
    ).scalar_one()


def _merchant_public_id(session: Session, merchant_id: int) -> str:
    merchants = table(Member).metadata.tables["merchants"]
    return session.execute(
        select(merchants.c.public_id).where(merchants.c.id == merchant_id)
    ).scalar_one()


def test_a_merchant_token_is_refused_on_every_member_route(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session)
    headers = f.merchant_headers(session, shop)
    for route in ROUTES:
        response = client.get(route, headers=headers)
        assert (response.status_code, response.json["code"]) == (403, "wrong_token_kind"), route


def test_an_operator_token_is_refused_too(client: FlaskClient, session: Session) -> None:
    response = client.get("/api/v1/me", headers=f.operator_headers(session))
    assert (response.status_code, response.json["code"]) == (403, "wrong_token_kind")


def test_the_member_sees_its_profile(client: FlaskClient, session: Session) -> None:
    shop = f.merchant(session)
    member_id = f.member(session)
    session.execute(
        update(members)
        .where(members.c.id == member_id)
        .values(email="dora@example.org", name="Dora")
    )
    card = session.execute(
        select(members.c.card_number).where(members.c.id == member_id)
    ).scalar_one()

    response = client.get("/api/v1/me", headers=f.member_headers(session, shop, member_id))

    assert response.status_code == 200
    assert response.json == {
        "id": _public_id(session, member_id),
        "card_number": card,
        "email": "dora@example.org",
        "name": "Dora",
        "tier": "Member",
        "tier_progress": {
            "current": "Member",
            "next": "Silver",
            "qualifying_spend": {"amount": 0, "currency": "EUR"},
            "next_threshold": {"amount": 50000, "currency": "EUR"},
            "spend_to_next": {"amount": 50000, "currency": "EUR"},
            "since": response.json["tier_progress"]["since"],
        },
        "premium": None,
        "attributes": {
            "birth_date": None,
            "household_size": None,
            "interests": None,
            "region": None,
        },
    }


def test_one_balance_across_shops_with_what_expires_and_where_points_came_from(
    client: FlaskClient, session: Session
) -> None:
    pharmacy = f.merchant(session, "Apotheke")
    bakery = f.merchant(session, "Bäckerei")
    member_id = f.member(session)
    f.purchase(session, member_id, pharmacy, 100, expires_at=MARCH_1)
    returned = f.purchase(session, member_id, pharmacy, 30, expires_at=MARCH_1_NOON)
    f.purchase(session, member_id, pharmacy, 20, expires_at=MARCH_1 + timedelta(hours=1))
    f.purchase(session, member_id, bakery, 50, expires_at=JUNE_1)
    f.purchase(session, member_id, bakery, 40, expires_at=MARCH_1_LATE_UTC)
    # Spent at the bakery, soonest-expiring first: 60 of the 100 expiring on 1 March.
    f.redeem(session, member_id, bakery, 60)
    # A redemption reversed, and a purchase returned in full: neither counts.
    undone = f.redeem(session, member_id, bakery, 10)
    operations.reverse_redemption(
        session,
        redemption_id=undone["transaction"]["id"],
        merchant_id=bakery,
        actor=TILL,
        now=T0,
    )
    operations.refund(
        session,
        purchase_id=returned["transaction"]["id"],
        merchant_id=pharmacy,
        amount_minor=3000,
        actor=TILL,
        now=T0,
    )
    holds.place_hold(
        session, member_id=member_id, merchant_id=pharmacy, points=25, now=clock.utcnow()
    )

    response = client.get(
        "/api/v1/me/balance", headers=f.member_headers(session, bakery, member_id)
    )

    assert response.status_code == 200
    body = response.json
    assert (body["points"], body["available"], body["held"], body["debt"]) == (150, 125, 25, 0)
    # 40 + 20 on Berlin's 1 March; the lot at 23:30 UTC expires on 2 March in Berlin.
    assert body["expiring"] == [
        {"points": 60, "expires_at": MARCH_1.isoformat()},
        {"points": 40, "expires_at": MARCH_1_LATE_UTC.isoformat()},
        {"points": 50, "expires_at": JUNE_1.isoformat()},
    ]
    assert body["by_merchant"] == [
        {
            "merchant": {"id": _merchant_public_id(session, pharmacy), "name": "Apotheke"},
            "earned": 120,
            "redeemed": 0,
        },
        {
            "merchant": {"id": _merchant_public_id(session, bakery), "name": "Bäckerei"},
            "earned": 90,
            "redeemed": 60,
        },
    ]


def test_a_new_member_has_nothing_yet(client: FlaskClient, session: Session) -> None:
    shop = f.merchant(session)
    member_id = f.member(session)
    response = client.get("/api/v1/me/balance", headers=f.member_headers(session, shop, member_id))
    assert response.json == {
        "points": 0,
        "available": 0,
        "held": 0,
        "pending": 0,
        "pending_dates": [],
        "debt": 0,
        "expiring": [],
        "by_merchant": [],
    }


def test_the_member_pages_through_its_history_at_every_shop(
    client: FlaskClient, session: Session
) -> None:
    first, second = f.merchant(session, "First"), f.merchant(session, "Second")
    member_id, stranger = f.member(session), f.member(session)
    made = [
        f.purchase(session, member_id, first, 10)["transaction"]["id"],
        f.purchase(session, member_id, second, 20)["transaction"]["id"],
        f.redeem(session, member_id, second, 5)["transaction"]["id"],
        f.purchase(session, member_id, first, 30)["transaction"]["id"],
        f.redeem(session, member_id, first, 7)["transaction"]["id"],
    ]
    f.purchase(session, stranger, first, 99)  # another member's: never listed
    # The app belongs to the first shop; the history spans both.
    headers = f.member_headers(session, first, member_id, "balance:read")

    pages, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(f"/api/v1/me/transactions{query}", headers=headers)
        assert response.status_code == 200
        pages.append(response.json["data"])
        cursor = response.json["next_cursor"]
        if cursor is None:
            break

    assert [len(page) for page in pages] == [2, 2, 1]
    listed = [item for page in pages for item in page]
    assert [item["id"] for item in listed] == list(reversed(made))
    assert [(i["type"], i["points"], i["merchant"]["name"]) for i in listed] == [
        ("redeem", 7, "First"),
        ("earn", 30, "First"),
        ("redeem", 5, "Second"),
        ("earn", 20, "Second"),
        ("earn", 10, "First"),
    ]
    assert listed[0]["reason"] == "redemption"
    assert listed[0]["created_at"] == T0.isoformat()


def test_expired_points_show_in_the_history_without_a_shop(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session)
    member_id = f.member(session)
    f.purchase(session, member_id, shop, 10, expires_at=T0 + timedelta(days=1))
    expiry.expire_due_lots(
        session,
        cutoff=T0 + timedelta(days=2),
        now=T0 + timedelta(days=2),
        actor=Actor("job", "expiry"),
    )

    response = client.get(
        "/api/v1/me/transactions", headers=f.member_headers(session, shop, member_id)
    )

    latest = response.json["data"][0]
    assert (latest["type"], latest["points"], latest["merchant"]) == ("expiry", 10, None)


def test_a_forged_cursor_or_a_huge_page_is_refused(client: FlaskClient, session: Session) -> None:
    shop = f.merchant(session)
    headers = f.member_headers(session, shop, f.member(session))
    forged = client.get("/api/v1/me/transactions?cursor=nonsense", headers=headers)
    huge = client.get("/api/v1/me/transactions?limit=501", headers=headers)
    assert (forged.status_code, forged.json["code"]) == (422, "validation_error")
    assert (huge.status_code, huge.json["code"]) == (422, "validation_error")


def test_the_code_shown_works_once_at_a_till(
    client: FlaskClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime(2026, 3, 2, 10, 0, 7, tzinfo=UTC)
    monkeypatch.setattr(clock, "utcnow", lambda: now)
    shop = f.merchant(session)
    member_id = f.member(session)

    response = client.get("/api/v1/me/code", headers=f.member_headers(session, shop, member_id))

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert set(response.json) == {"code", "expires_at"}
    code = response.json["code"]
    assert len(code) == 6 and code.isdigit()
    assert response.json["expires_at"] == datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC).isoformat()
    codes.consume(session, member_id, code, now)
    with pytest.raises(codes.InvalidCode):
        codes.consume(session, member_id, code, now + timedelta(seconds=1))


def test_the_code_needs_the_redeem_scope(client: FlaskClient, session: Session) -> None:
    shop = f.merchant(session)
    member_id = f.member(session)
    response = client.get(
        "/api/v1/me/code", headers=f.member_headers(session, shop, member_id, "balance:read")
    )
    assert (response.status_code, response.json["code"]) == (403, "insufficient_scope")


@pytest.mark.parametrize("route", ROUTES)
def test_a_blocked_member_reads_nothing(client: FlaskClient, session: Session, route: str) -> None:
    shop = f.merchant(session)
    member_id = f.member(session)
    headers = f.member_headers(session, shop, member_id)
    session.execute(update(members).where(members.c.id == member_id).values(status="blocked"))

    response: Any = client.get(route, headers=headers)

    assert (response.status_code, response.json["code"]) == (404, "not_found")
