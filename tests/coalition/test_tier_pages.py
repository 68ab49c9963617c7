"""Tier progress where people see it: `GET /api/v1/me` gives the qualifying spend and what the
next tier takes, `/me` says it in words with a progress bar, and the operator console's home
counts the members of each tier. A member sees only its own spend."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from coalition import clock
from coalition.ledger import operations
from coalition.members import credentials
from coalition.members.models import Member
from tests import factories as f
from tests.factories import T0
from tests.ops_helpers import sign_in_as

NOW = T0 + timedelta(days=1)
PASSWORD = "a long enough password"
EUR = 100


@pytest.fixture(autouse=True)
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _registered(session: Session, email: str) -> int:
    return credentials.join(
        session, now=T0, card_prefix="9999", email=email, password=PASSWORD, name=None
    ).id


def _sign_in(client: FlaskClient, email: str) -> None:
    html = client.get("/me/sign-in").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert token is not None
    response = client.post(
        "/me/sign-in", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert response.status_code == 303


def _set_tier(session: Session, member_id: int, tier: str) -> None:
    session.execute(update(Member).where(Member.id == member_id).values(tier=tier))


@pytest.mark.both_backends
def test_the_api_gives_the_spend_and_what_the_next_tier_takes(
    client: FlaskClient, session: Session
) -> None:
    shop, other = f.merchant(session, "Bakery"), f.merchant(session, "Garage")
    alice, bob = f.member(session), f.member(session)
    f.purchase(session, alice, shop, 1, amount_minor=300 * EUR)
    bought = f.purchase(session, alice, other, 1, amount_minor=150 * EUR)
    operations.refund(
        session,
        purchase_id=bought["transaction"]["id"],
        merchant_id=other,
        amount_minor=70 * EUR,
        actor=f.TILL,
        now=T0,
    )

    mine = client.get("/api/v1/me", headers=f.member_headers(session, shop, alice)).json
    theirs = client.get("/api/v1/me", headers=f.member_headers(session, shop, bob)).json

    # Both shops count, whichever app asks; the refund lowers the spend.
    assert mine["tier_progress"] == {
        "current": "Member",
        "next": "Silver",
        "qualifying_spend": {"amount": 380 * EUR, "currency": "EUR"},
        "next_threshold": {"amount": 500 * EUR, "currency": "EUR"},
        "spend_to_next": {"amount": 120 * EUR, "currency": "EUR"},
        "since": "2025-03-04",
    }
    # Another member's token sees its own spend, not hers.
    assert theirs["tier_progress"]["qualifying_spend"] == {"amount": 0, "currency": "EUR"}


@pytest.mark.both_backends
def test_at_the_top_tier_there_is_nothing_next(client: FlaskClient, session: Session) -> None:
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 1, amount_minor=6000 * EUR)
    _set_tier(session, alice, "Platinum")

    progress = client.get("/api/v1/me", headers=f.member_headers(session, shop, alice)).json[
        "tier_progress"
    ]

    assert progress["current"] == "Platinum"
    assert progress["next"] is None
    assert progress["spend_to_next"] is None and progress["next_threshold"] is None
    assert progress["qualifying_spend"] == {"amount": 6000 * EUR, "currency": "EUR"}


@pytest.mark.both_backends
def test_the_member_site_says_how_far_the_next_tier_is(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session)
    dora = _registered(session, "dora@example.org")
    f.purchase(session, dora, shop, 1, amount_minor=1400 * EUR)
    _set_tier(session, dora, "Silver")
    other = _registered(session, "olga@example.org")
    _sign_in(client, "dora@example.org")

    html = client.get("/me/").get_data(as_text=True)

    text = _text(html)
    assert "Your tier: Silver" in text
    assert "Silver: €600.00 more to Gold." in text
    assert "€1,400.00 of €2,000.00 spent at partner shops since Mar 4, 2025" in text
    assert 'aria-label="70% of the way to Gold"' in html
    assert '<rect class="fill" x="0" y="0" width="70"' in html
    assert other


@pytest.mark.both_backends
def test_the_member_site_names_the_highest_tier(client: FlaskClient, session: Session) -> None:
    shop = f.merchant(session)
    dora = _registered(session, "dora@example.org")
    f.purchase(session, dora, shop, 1, amount_minor=5000 * EUR)
    _set_tier(session, dora, "Platinum")
    _sign_in(client, "dora@example.org")

    text = _text(client.get("/me/").get_data(as_text=True))

    assert "Platinum is our highest tier: €5,000.00 spent at partner shops" in text
    assert "more to" not in text


def test_the_operator_console_counts_the_members_of_each_tier(
    client: FlaskClient, session: Session
) -> None:
    members = [f.member(session) for _ in range(5)]
    for member, tier in zip(members, ("Silver", "Silver", "Gold", "Member", "Member"), strict=True):
        _set_tier(session, member, tier)
    sign_in_as(client, session, "support")

    html = client.get("/ops/").get_data(as_text=True)

    rows = [
        _text(row) for row in re.findall(r"<tr>(.*?)</tr>", html.split('id="tiers"')[1], flags=re.S)
    ]
    assert rows[1:6] == [
        "Member 2 40%",
        "Silver 2 40%",
        "Gold 1 20%",
        "Platinum 0 0%",
        "All members 5",
    ]
