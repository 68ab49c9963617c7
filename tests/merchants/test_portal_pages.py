"""The merchant portal, `/portal` (SPEC 3.9): a business applies in three steps and waits for
approval; an approved one signs in and sees its month, its transactions (filtered, as CSV), its
members, its API credentials and its statements, and nothing of another merchant's."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from coalition import clock, outbox
from coalition.database import table
from coalition.oauth.models import ClientSecret, OAuthClient
from merchants import services
from tests import factories as f

PASSWORD = "a long enough password"
clients = table(OAuthClient)
secrets_ = table(ClientSecret)


def _token(client: FlaskClient, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert found is not None, html
    return found.group(1)


def _post(client: FlaskClient, form_page: str, path: str, **data: Any) -> Any:
    return client.post(path, data={**data, "csrf_token": _token(client, form_page)})


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _merchant(session: Session, email: str, name: str = "Apotheke", active: bool = True) -> int:
    standing = services.apply(
        session,
        name=name,
        email=email,
        country="DE",
        category="pharmacy",
        website=None,
        contact_name="Anna",
        password_hash=generate_password_hash(PASSWORD),
        now=clock.utcnow(),
    )
    if active:
        services.approve_merchant(session, standing.id, clock.utcnow())
    merchants = table(services.Merchant)
    return int(
        session.execute(
            select(merchants.c.id).where(merchants.c.public_id == standing.id)
        ).scalar_one()
    )


def _sign_in(client: FlaskClient, email: str, password: str = PASSWORD) -> Any:
    return _post(client, "/portal/sign-in", "/portal/sign-in", email=email, password=password)


def test_a_business_applies_in_three_steps_and_waits_for_approval(
    client: FlaskClient, session: Session
) -> None:
    step = _post(
        client,
        "/portal/apply",
        "/portal/apply",
        name="Blumen Berta",
        country="de",
        category="flowers",
        website="https://berta.example",
    )
    assert step.status_code == 303 and step.headers["Location"].endswith("/portal/apply/contact")
    step = _post(
        client,
        "/portal/apply/contact",
        "/portal/apply/contact",
        contact_name="Berta",
        email="Berta@Flowers.example",
    )
    assert step.headers["Location"].endswith("/portal/apply/finish")
    refused = _post(client, "/portal/apply/finish", "/portal/apply/finish", password=PASSWORD)
    assert "Accept the terms to apply." in refused.get_data(as_text=True)
    done = _post(
        client, "/portal/apply/finish", "/portal/apply/finish", password=PASSWORD, terms="y"
    )
    assert done.status_code == 303
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Your application is awaiting approval" in page
    merchants = table(services.Merchant)
    row = session.execute(
        select(merchants.c.status, merchants.c.country).where(
            merchants.c.email == "berta@flowers.example"
        )
    ).one()
    assert (row.status, row.country) == ("pending", "DE")
    # Signed in again later, a pending merchant still sees its standing, not the dashboard.
    client.post("/portal/sign-out", data={"csrf_token": _token(client, "/portal/standing")})
    again = _sign_in(client, "berta@flowers.example")
    assert again.headers["Location"].endswith("/portal/standing")
    assert client.get("/portal/").headers["Location"].endswith("/portal/standing")


def test_a_wrong_password_is_an_error_and_many_lock_the_account(
    client: FlaskClient, session: Session
) -> None:
    _merchant(session, "locked@shop.example")
    wrong = _sign_in(client, "locked@shop.example", "not the password")
    assert wrong.status_code == 200
    assert "The email or password is not right." in wrong.get_data(as_text=True)
    for _ in range(4):
        _sign_in(client, "locked@shop.example", "still not it")
    locked = _sign_in(client, "locked@shop.example")
    assert locked.status_code == 429
    assert "Too many attempts" in locked.get_data(as_text=True)
    assert client.get("/portal/").status_code == 302
    # A locked account may still ask for a new password.
    asked = _post(
        client, "/portal/password-reset", "/portal/password-reset", email="locked@shop.example"
    )
    assert asked.status_code == 303


def test_the_dashboard_counts_a_purchase_the_merchant_recorded(
    client: FlaskClient, session: Session
) -> None:
    merchant_id = _merchant(session, "dash@shop.example")
    member_id = f.member(session)
    f.purchase(session, member_id, merchant_id, 120, now=clock.utcnow())
    signed_in = _sign_in(client, "dash@shop.example")
    assert signed_in.status_code == 303
    page = client.get("/portal/")
    assert page.status_code == 200
    text = _text(page.get_data(as_text=True))
    assert "Points issued 120" in text
    assert "Members won 1" in text
    assert "Provisional net position" in text
    assert 'data-points="120"' in page.get_data(as_text=True)  # today's bar in the chart


def test_transactions_filter_and_download_as_csv(client: FlaskClient, session: Session) -> None:
    merchant_id = _merchant(session, "tx@shop.example")
    first, second = f.member(session), f.member(session)
    f.purchase(session, first, merchant_id, 30, now=clock.utcnow())
    f.purchase(session, second, merchant_id, 40, now=clock.utcnow())
    f.redeem(session, first, merchant_id, 10, now=clock.utcnow())
    other = f.merchant(session, "Elsewhere")
    f.purchase(session, first, other, 77, now=clock.utcnow())
    _sign_in(client, "tx@shop.example")
    everything = _text(client.get("/portal/transactions").get_data(as_text=True))
    assert "€30.00" in everything and "€40.00" in everything and "€77.00" not in everything
    earns = _text(client.get("/portal/transactions?type=earn").get_data(as_text=True))
    assert "€40.00" in earns and "Redemption mbr_" not in earns
    all_rows = list(csv.DictReader(io.StringIO(client.get("/portal/transactions.csv").text)))
    assert sorted(r["points"] for r in all_rows) == ["10", "30", "40"]
    download = client.get("/portal/transactions.csv?type=redeem")
    assert download.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(download.get_data(as_text=True))))
    assert [(r["type"], r["points"]) for r in rows] == [("redeem", "10")]
    nobody = client.get("/portal/transactions?member=0000000000000000")
    assert "No transaction matches this filter." in nobody.get_data(as_text=True)


def test_credentials_are_created_rotated_and_revoked(client: FlaskClient, session: Session) -> None:
    merchant_id = _merchant(session, "keys@shop.example")
    _sign_in(client, "keys@shop.example")
    made = client.post(
        "/portal/credentials",
        data={
            "name": "Till 1",
            "scopes": ["purchases:write", "members:read"],
            "redirect_uris": "https://till.example/cb\n",
            "csrf_token": _token(client, "/portal/credentials"),
        },
    )
    assert made.status_code == 201
    html = made.get_data(as_text=True)
    secret = re.search(r'class="secret">(cs_[^<]+)<', html)
    assert secret is not None
    row = session.execute(
        select(clients.c.id, clients.c.client_id, clients.c.scopes, clients.c.redirect_uris).where(
            clients.c.merchant_id == merchant_id
        )
    ).one()
    assert row.scopes == "members:read purchases:write"
    assert row.redirect_uris == ["https://till.example/cb"]
    rotated = client.post(
        f"/portal/credentials/{row.client_id}/rotate",
        data={"csrf_token": _token(client, "/portal/credentials")},
    )
    new_secret = re.search(r'class="secret">(cs_[^<]+)<', rotated.get_data(as_text=True))
    assert new_secret is not None and new_secret.group(1) != secret.group(1)
    kept = (
        session.execute(select(secrets_.c.expires_at).where(secrets_.c.client_id == row.id))
        .scalars()
        .all()
    )
    assert sorted(x is None for x in kept) == [False, True]  # the old one ends after the grace
    revoked = client.post(
        f"/portal/credentials/{row.client_id}/revoke",
        data={"csrf_token": _token(client, "/portal/credentials")},
    )
    assert revoked.status_code == 303
    assert (
        session.execute(select(clients.c.revoked_at).where(clients.c.id == row.id)).scalar_one()
        is not None
    )


def test_another_merchants_client_is_not_found(client: FlaskClient, session: Session) -> None:
    _merchant(session, "mine@shop.example")
    theirs = f.client(session, f.merchant(session, "Theirs"))
    _sign_in(client, "mine@shop.example")
    token = _token(client, "/portal/credentials")
    answer = client.post(
        f"/portal/credentials/{theirs['client_id']}/revoke", data={"csrf_token": token}
    )
    assert answer.status_code == 404
    assert "Page not found" in answer.get_data(as_text=True)


def test_statements_as_a_page_csv_and_pdf_and_not_another_merchants(
    client: FlaskClient, session: Session
) -> None:
    merchant_id = _merchant(session, "stm@shop.example")
    own = f.statement(session, merchant_id, closing="-1.50").public_id
    other = f.statement(session, f.merchant(session, "Other"), closing="2.00").public_id
    _sign_in(client, "stm@shop.example")
    listing = _text(client.get("/portal/statements").get_data(as_text=True))
    assert "2026-10" in listing and "Link a Stripe account" in listing
    page = client.get(f"/portal/statements/{own}")
    assert page.status_code == 200
    assert "Points redeemed" in page.get_data(as_text=True)
    as_csv = client.get(f"/portal/statements/{own}.csv")
    assert as_csv.mimetype == "text/csv" and own in as_csv.get_data(as_text=True)
    as_pdf = client.get(f"/portal/statements/{own}.pdf")
    assert as_pdf.mimetype == "application/pdf" and as_pdf.data.startswith(b"%PDF")
    for suffix in ("", ".csv", ".pdf"):
        assert client.get(f"/portal/statements/{other}{suffix}").status_code == 404


def test_members_are_looked_up_and_enrolled_at_the_till(
    client: FlaskClient, session: Session
) -> None:
    _merchant(session, "till@shop.example")
    _sign_in(client, "till@shop.example")
    enrolled = _post(
        client, "/portal/members", "/portal/members/enrol", name="Karl", email="karl@example.org"
    )
    assert enrolled.status_code == 303
    page = _text(client.get(enrolled.headers["Location"]).get_data(as_text=True))
    assert "Member enrolled." in page
    assert "Balance 0" in page
    unknown = client.get("/portal/members?card=1234")
    assert "No member has this card." in unknown.get_data(as_text=True)


def test_a_post_without_its_csrf_token_is_refused(client: FlaskClient, session: Session) -> None:
    answer = client.post("/portal/sign-in", data={"email": "x@shop.example", "password": "x"})
    assert answer.status_code == 400
    assert "This form has expired" in answer.get_data(as_text=True)


def test_a_password_reset_link_works_once_within_the_hour(
    client: FlaskClient, session: Session, app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    _merchant(session, "reset@shop.example")
    caplog.set_level("INFO", logger="merchants.passwords")
    asked = _post(
        client, "/portal/password-reset", "/portal/password-reset", email="reset@shop.example"
    )
    unknown = _post(
        client, "/portal/password-reset", "/portal/password-reset", email="nobody@shop.example"
    )
    assert asked.status_code == unknown.status_code == 303
    links = re.findall(r"(http://\S+/portal/password-reset/\S+)", caplog.text)
    assert len(links) == 1
    path = links[0].split("localhost", 1)[1]
    changed = _post(client, path, path, password="a brand new password")
    assert changed.status_code == 303
    assert _sign_in(client, "reset@shop.example", "a brand new password").status_code == 303
    client.post("/portal/sign-out", data={"csrf_token": _token(client, "/portal/")})
    again = client.get(path)
    assert again.status_code == 303 and again.headers["Location"].endswith("/portal/password-reset")
    assert {"merchant.password_reset_requested"} <= outbox.EVENT_TYPES


def test_a_refused_merchant_reads_the_reason_and_a_suspended_one_its_standing(
    client: FlaskClient, session: Session
) -> None:
    _merchant(session, "refused@shop.example", active=False)
    merchants = table(services.Merchant)
    refused = session.execute(
        select(merchants.c.public_id).where(merchants.c.email == "refused@shop.example")
    ).scalar_one()
    services.refuse_merchant(session, refused, "We need a shop in our cities.", clock.utcnow())
    signed_in = _sign_in(client, "refused@shop.example")
    assert signed_in.headers["Location"].endswith("/portal/standing")
    page = _text(client.get("/portal/standing").get_data(as_text=True))
    assert "Your application was refused" in page
    assert "We need a shop in our cities." in page
    assert client.get("/portal/transactions").headers["Location"].endswith("/portal/standing")

    merchant_id = _merchant(session, "suspended@shop.example")
    suspended = session.execute(
        select(merchants.c.public_id).where(merchants.c.id == merchant_id)
    ).scalar_one()
    client.post("/portal/sign-out", data={"csrf_token": _token(client, "/portal/standing")})
    _sign_in(client, "suspended@shop.example")
    assert client.get("/portal/").status_code == 200
    services.suspend_merchant(session, suspended, clock.utcnow())
    assert client.get("/portal/").headers["Location"].endswith("/portal/standing")
    assert "Your account is suspended" in client.get("/portal/standing").get_data(as_text=True)
