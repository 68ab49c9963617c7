"""Buying the paid premium membership (SPEC 2, 3.7; issue 13, point 8) through the existing
Stripe gateway: `/me/premium` shows the offer, "Buy" makes one Checkout Session per member and
period (under an idempotency key derived from both) and sends the member there, and only the
signed `checkout.session.completed` webhook starts the year; a replay changes nothing, a forged
event nothing at all. The operator sets the terms (economics `premium`) and sees the revenue in
the monthly report. The Stripe stand-in serves the API over real HTTP (tests/stripe_standin.py)."""

from __future__ import annotations

import copy
import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coalition import clock, economics
from coalition.database import table
from coalition.members import credentials, premium
from coalition.members.models import Member, Membership
from coalition.outbox import OutboxEvent
from settlement.gateway import EXTENSION, StripeGateway
from tests import factories as f
from tests.ops_helpers import sign_in_as
from tests.stripe_standin import StripeStandIn, stripe_for

SECRET = "whsec_test_premium"
PASSWORD = "a long enough password"
NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
ONE_YEAR_LATER = datetime(2027, 11, 2, 10, 0, tzinfo=UTC)
memberships = table(Membership)
members = table(Member)
events = table(OutboxEvent)


@pytest.fixture
def stopped(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    return NOW


@pytest.fixture
def stripe(app: Flask, session: Session, stopped: datetime) -> Iterator[StripeStandIn]:
    previous = app.config["STRIPE_WEBHOOK_SECRET"]
    app.config["STRIPE_WEBHOOK_SECRET"] = SECRET
    with stripe_for(app) as stand_in:
        yield stand_in
    app.config["STRIPE_WEBHOOK_SECRET"] = previous


def _csrf(client: FlaskClient, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert found is not None, html
    return found.group(1)


def _signed_in(client: FlaskClient, session: Session, email: str) -> int:
    """A member who joined with `email`, signed in to `/me` on `client`; its id."""
    new = credentials.join(
        session, now=NOW, card_prefix="9999", email=email, password=PASSWORD, name=None
    )
    session.commit()
    answer = client.post(
        "/me/sign-in",
        data={"email": email, "password": PASSWORD, "csrf_token": _csrf(client, "/me/sign-in")},
    )
    assert answer.status_code == 303
    return new.id


def _buy(client: FlaskClient) -> Any:
    return client.post("/me/premium", data={"csrf_token": _csrf(client, "/me/premium")})


def _post(client: FlaskClient, event: dict[str, Any], secret: str = SECRET) -> Any:
    body, headers = StripeStandIn.signed(event, secret)
    return client.post("/webhooks/stripe", data=body, headers=headers)


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _rows(session: Session, member_id: int) -> list[Any]:
    return list(
        session.execute(
            select(memberships)
            .where(memberships.c.member_id == member_id)
            .order_by(memberships.c.id)
        ).all()
    )


def _events(session: Session, member_id: int, kind: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(events)
            .where(events.c.member_id == member_id, events.c.type == kind)
        )
        or 0
    )


def _public_id(session: Session, member_id: int) -> str:
    return str(session.scalar(select(members.c.public_id).where(members.c.id == member_id)))


def test_a_member_buys_a_year_and_only_the_signed_webhook_starts_it_once(
    client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    member_id = _signed_in(client, session, "dora@example.org")

    offer = _text(client.get("/me/premium").get_data(as_text=True))
    assert "€29.00" in offer and "\u00d71.5" in offer and "Buy for €29.00" in offer

    bought = _buy(client)

    [checkout] = stripe.all("checkout.session")
    assert (bought.status_code, bought.headers["Location"]) == (303, checkout["url"])
    assert (checkout["amount_total"], checkout["currency"]) == (2900, "eur")
    assert checkout["customer_email"] == "dora@example.org"
    [row] = _rows(session, member_id)
    assert (row.status, row.period, row.checkout_session_id) == ("pending", 1, checkout["id"])
    assert checkout["metadata"]["membership"] == row.public_id
    key = f"premium:{_public_id(session, member_id)}:1:{row.public_id}"
    assert ("POST", "/v1/checkout/sessions", key) in stripe.calls
    # Paying is not enough on its own: nothing starts before Stripe's signed word.
    assert premium.premium_multiplier_at(session, member_id, NOW) is None
    waiting = _text(client.get("/me/premium?paid=1").get_data(as_text=True))
    assert "starts as soon as Stripe confirms" in waiting

    completed = stripe.complete_checkout(checkout["id"])
    first = _post(client, completed)
    replay = _post(client, completed)

    assert (first.status_code, first.get_json()["replayed"]) == (200, False)
    assert (replay.status_code, replay.get_json()["replayed"]) == (200, True)
    session.expire_all()
    [row] = _rows(session, member_id)
    assert (row.status, row.starts_at, row.ends_at) == ("active", NOW, ONE_YEAR_LATER)
    assert row.payment_intent_id == checkout["payment_intent"]
    assert _events(session, member_id, "membership.started") == 1
    assert premium.premium_multiplier_at(session, member_id, NOW) == Decimal("1.5")

    page = _text(client.get("/me/premium").get_data(as_text=True))
    assert "You are a premium member until Nov 2, 2027" in page
    assert "Buy for" not in page
    home = _text(client.get("/me").get_data(as_text=True))
    assert "Premium member until Nov 2, 2027" in home


def test_the_same_period_cannot_be_bought_twice(
    client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    member_id = _signed_in(client, session, "eve@example.org")
    _buy(client)
    [checkout] = stripe.all("checkout.session")
    # A second click, or a second tab, while the payment is open: the same session again.
    again = _buy(client)
    assert (again.status_code, again.headers["Location"]) == (303, checkout["url"])
    assert len(stripe.all("checkout.session")) == 1
    _post(client, stripe.complete_checkout(checkout["id"]))

    refused = client.post("/me/premium", data={"csrf_token": _csrf(client, "/me/premium")})

    assert refused.status_code == 409
    assert "You cannot buy this period twice" in _text(refused.get_data(as_text=True))
    assert len(stripe.all("checkout.session")) == 1
    assert [row.status for row in _rows(session, member_id)] == ["active"]


def test_a_forged_or_stale_webhook_starts_nothing(
    client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    member_id = _signed_in(client, session, "mallory@example.org")
    _buy(client)
    [checkout] = stripe.all("checkout.session")
    completed = stripe.complete_checkout(checkout["id"])

    forged = _post(client, completed, secret="whsec_guessed")
    body, headers = StripeStandIn.signed(completed, SECRET, timestamp=int(NOW.timestamp()))
    stale = client.post("/webhooks/stripe", data=body, headers=headers)
    unsigned = client.post("/webhooks/stripe", data=body, headers={})

    assert [r.status_code for r in (forged, stale, unsigned)] == [400, 400, 400]
    assert forged.get_json()["code"] == "invalid_signature"
    [row] = _rows(session, member_id)
    assert row.status == "pending"
    assert premium.premium_multiplier_at(session, member_id, NOW) is None


def test_an_expired_checkout_lets_the_member_try_again(
    client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    member_id = _signed_in(client, session, "frank@example.org")
    _buy(client)
    [first] = stripe.all("checkout.session")
    assert _post(client, stripe.expire_checkout(first["id"])).status_code == 200

    retried = _buy(client)

    second = next(s for s in stripe.all("checkout.session") if s["id"] != first["id"])
    assert retried.headers["Location"] == second["url"]
    assert [(r.status, r.period) for r in _rows(session, member_id)] == [
        ("cancelled", 1),
        ("pending", 1),
    ]
    # The late payment of the given-up session cannot take the period a second time.
    _post(client, stripe.complete_checkout(second["id"]))
    _post(client, stripe.complete_checkout(first["id"]))
    session.expire_all()
    assert [r.status for r in _rows(session, member_id)] == ["cancelled", "active"]


def test_a_checkout_stripe_cannot_make_leaves_a_retry_with_the_same_key(
    client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    member_id = _signed_in(client, session, "grace@example.org")
    stripe.fail_next("POST", "/v1/checkout/sessions")

    failed = _buy(client)

    assert failed.status_code == 503
    assert "Nothing was charged" in _text(failed.get_data(as_text=True))
    assert stripe.all("checkout.session") == []
    retried = _buy(client)
    [checkout] = stripe.all("checkout.session")
    assert retried.headers["Location"] == checkout["url"]
    keys = {key for method, path, key in stripe.calls if path == "/v1/checkout/sessions"}
    assert len(keys) == 1
    assert len(_rows(session, member_id)) == 1


def test_a_full_refund_ends_the_year_and_its_multiplier(
    client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    member_id = _signed_in(client, session, "heidi@example.org")
    _buy(client)
    [checkout] = stripe.all("checkout.session")
    _post(client, stripe.complete_checkout(checkout["id"]))
    stored = stripe.get("checkout.session", checkout["id"])

    assert _post(client, stripe.refund_payment(stored["payment_intent"])).status_code == 200

    session.expire_all()
    [row] = _rows(session, member_id)
    assert (row.status, row.ends_at) == ("refunded", NOW)
    assert premium.premium_multiplier_at(session, member_id, NOW + timedelta(days=1)) is None


def test_without_stripe_the_page_offers_nothing_to_buy(
    app: Flask, client: FlaskClient, session: Session, stopped: datetime
) -> None:
    previous = app.extensions.get(EXTENSION)
    app.extensions[EXTENSION] = StripeGateway(None, "http://127.0.0.1:9")
    try:
        member_id = _signed_in(client, session, "ivan@example.org")
        page = _text(client.get("/me/premium").get_data(as_text=True))
        refused = _buy(client)
    finally:
        app.extensions[EXTENSION] = previous
    assert "Payments are not available right now" in page and "Buy for" not in page
    assert refused.status_code == 503
    assert _rows(session, member_id) == []


def test_a_member_sees_only_its_own_membership(
    client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    buyer = _signed_in(client, session, "judy@example.org")
    _buy(client)
    [checkout] = stripe.all("checkout.session")
    _post(client, stripe.complete_checkout(checkout["id"]))
    client.post("/me/sign-out", data={"csrf_token": _csrf(client, "/me")})
    other = _signed_in(client, session, "ken@example.org")

    page = _text(client.get("/me/premium").get_data(as_text=True))
    home = _text(client.get("/me").get_data(as_text=True))

    assert "premium member until" not in page.lower() and "Buy for €29.00" in page
    assert "Premium member until" not in home and "See the offer" in home
    shop = f.merchant(session)
    mine = client.get("/api/v1/me", headers=f.member_headers(session, shop, other)).get_json()
    theirs = client.get("/api/v1/me", headers=f.member_headers(session, shop, buyer)).get_json()
    assert mine["premium"] is None
    assert theirs["premium"] == {
        "id": _rows(session, buyer)[0].public_id,
        "since": NOW.isoformat(),
        "until": ONE_YEAR_LATER.isoformat(),
        "multiplier": "1.5",
    }


# The operator's side: the terms, and the revenue in the monthly report.

ECONOMICS = "/api/v1/ops/economics"


def test_the_operator_sets_the_premium_terms_and_a_version_without_them_keeps_them(
    client: FlaskClient, session: Session, stopped: datetime
) -> None:
    operator = f.operator_headers(session)
    terms = copy.deepcopy(economics.DEFAULT_TERMS.to_json())
    dearer = {"price_minor": 3900, "multiplier": "2", "reminder_days": 14}
    day = (NOW + timedelta(days=2)).date()

    set_ = client.put(
        ECONOMICS,
        json={"effective_from": day.isoformat(), "terms": {**terms, "premium": dearer}},
        headers=operator,
    )
    later = day + timedelta(days=1)
    del terms["premium"]
    kept = client.put(
        ECONOMICS,
        json={"effective_from": later.isoformat(), "terms": {**terms, "welcome_bonus": 50}},
        headers=operator,
    )
    bad = client.put(
        ECONOMICS,
        json={
            "effective_from": later.isoformat(),
            "terms": {**terms, "premium": {**dearer, "multiplier": "0.5"}},
        },
        headers=operator,
    )

    assert (set_.status_code, kept.status_code) == (200, 200)
    assert bad.status_code == 422
    assert "multiplier" in bad.get_json()["errors"]["terms"]["premium"]
    found = client.get(ECONOMICS, query_string={"date": later.isoformat()}, headers=operator)
    assert found.get_json()["current"]["premium"] == dearer
    assert found.get_json()["current"]["welcome_bonus"] == 50
    assert economics.coalition_terms(session, NOW.date()).premium == economics.DEFAULT_PREMIUM


def test_the_monthly_report_shows_the_premium_revenue(
    client: FlaskClient, session: Session
) -> None:
    terms = economics.DEFAULT_PREMIUM
    for n, day in enumerate((2, 30, 30)):
        moment = datetime(2026, 3, day, 12, 0, tzinfo=UTC)
        premium.paid_year(session, f.member(session), moment, terms, "EUR", f"pi_{n}")
    # Paid at 23:30 UTC on 31 March: already 1 April in Berlin, so April's.
    late = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    premium.paid_year(session, f.member(session), late, terms, "EUR", "pi_april")
    # A refund in March of a year paid in March.
    premium.refund(session, "pi_0", datetime(2026, 3, 20, tzinfo=UTC))
    session.commit()
    sign_in_as(client, session, "finance")

    page = _text(
        client.get("/ops/settlement/report", query_string={"month": "2026-03"}).get_data(
            as_text=True
        )
    )
    rows = list(
        csv.reader(
            io.StringIO(
                client.get("/ops/settlement/report.csv?month=2026-03").get_data(as_text=True),
                newline="",
            )
        )
    )

    assert "Premium memberships" in page
    assert "Paid in the month 3" in page and "Revenue (EUR) 87.00" in page
    assert "Refunded (EUR) 29.00" in page and "Net (EUR) 58.00" in page
    assert ["premium_memberships_paid", "3"] in rows and ["premium_revenue", "87.00"] in rows
    assert ["premium_net", "58.00"] in rows
    pdf = client.get("/ops/settlement/report.pdf?month=2026-03").get_data()
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Premium memberships" in text and "87.00" in text and "58.00" in text
