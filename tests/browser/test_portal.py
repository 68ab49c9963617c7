"""The merchant portal in a real browser: a business applies, is approved (by the operator's
service), signs in, creates API credentials, records a purchase through the API with them and
sees it on its dashboard. Each main page passes axe-core."""

from __future__ import annotations

import re
from collections.abc import Callable

import requests
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from coalition import clock
from coalition.database import table
from coalition.extensions import db
from coalition.members.models import Member
from merchants import services
from merchants.models import Merchant
from tests import factories as f

EMAIL = "owner@berta.example"
PASSWORD = "a long enough password"


def _approve(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        public_id = session.execute(
            select(table(Merchant).c.public_id).where(table(Merchant).c.email == EMAIL)
        ).scalar_one()
        services.approve_merchant(session, public_id, clock.utcnow())
        session.commit()


def _a_member(app: Flask) -> str:
    with app.app_context():
        session = db.session()
        member_id = f.member(session)
        card: str = session.execute(
            select(table(Member).c.card_number).where(table(Member).c.id == member_id)
        ).scalar_one()
        session.commit()
        return card


def test_a_merchant_applies_is_approved_creates_credentials_and_sees_a_purchase(
    page: Page,
    live_url: str,
    live_app: Flask,
    accessible: Callable[[Page], list[str]],
) -> None:
    page.goto(live_url + "/portal/")
    page.get_by_role("link", name="Apply to join").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Apply to join: your business")
    page.get_by_label("Business name").fill("Blumen Berta")
    page.get_by_label("Country (two-letter code, e.g. DE)").fill("DE")
    page.get_by_label("What you sell (e.g. groceries)").fill("flowers")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Contact person").fill("Berta")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("I accept the coalition's partner terms").check()
    page.get_by_role("button", name="Send the application").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Your application is awaiting approval"
    )
    page.get_by_role("button", name="Sign out").first.click()

    _approve(live_app)
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Blumen Berta")
    assert accessible(page) == []

    page.get_by_role("link", name="API credentials").click()
    assert accessible(page) == []
    page.get_by_label("Name (e.g. Till 1, web shop)").fill("Till 1")
    page.get_by_label("purchases:write").check()
    page.get_by_role("button", name="Create the client").click()
    expect(page.locator(".secret")).to_be_visible()
    client_id = page.locator("table.data code").first.inner_text()
    secret = page.locator(".secret").inner_text()
    assert re.fullmatch(r"cli_\S+", client_id) and secret.startswith("cs_")

    card = _a_member(live_app)
    token = requests.post(
        live_url + "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "purchases:write"},
        auth=(client_id, secret),
        timeout=10,
    )
    assert token.status_code == 200, token.text
    bought = requests.post(
        live_url + "/api/v1/purchases",
        json={"member": card, "amount": 2500, "currency": "EUR", "external_id": "r-1"},
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        timeout=10,
    )
    assert bought.status_code == 201, bought.text
    points = bought.json()["transaction"]["points"]

    page.get_by_role("link", name="Dashboard").click()
    issued = page.locator(".stat", has_text="Points issued").locator(".value")
    expect(issued).to_have_text(str(points))
    expect(page.locator(".stat", has_text="Members won").locator(".value")).to_have_text("1")

    page.get_by_role("link", name="Transactions").click()
    expect(page.locator("table.data")).to_contain_text("r-1")
    assert accessible(page) == []
    page.get_by_role("link", name="Statements").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Statements")
    assert accessible(page) == []
    page.get_by_role("link", name="Members").click()
    assert accessible(page) == []


def test_a_merchant_cannot_open_another_merchants_statement_nor_post_a_form_without_its_token(
    page: Page, live_url: str, live_app: Flask
) -> None:
    with live_app.app_context():
        session = db.session()
        standing = services.apply(
            session,
            name="Blumen Berta",
            email=EMAIL,
            country="DE",
            category="flowers",
            website=None,
            contact_name="Berta",
            password_hash=generate_password_hash(PASSWORD),
            now=clock.utcnow(),
        )
        services.approve_merchant(session, standing.id, clock.utcnow())
        merchants = table(Merchant)
        own_id = session.execute(
            select(merchants.c.id).where(merchants.c.public_id == standing.id)
        ).scalar_one()
        own = f.statement(session, own_id, closing="-1.50").public_id
        other = f.statement(session, f.merchant(session, "Other shop"), closing="2.00").public_id
        session.commit()

    page.goto(live_url + "/portal/sign-in")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Blumen Berta")

    assert page.goto(f"{live_url}/portal/statements/{own}").status == 200
    response = page.goto(f"{live_url}/portal/statements/{other}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")

    # The signed-in browser posts the credentials form without its CSRF token.
    refused = page.request.post(
        live_url + "/portal/credentials", form={"name": "Till 9", "scopes": "purchases:write"}
    )
    assert refused.status == 400
    assert "This form has expired" in refused.text()
    page.goto(live_url + "/portal/credentials")
    expect(page.locator("main")).not_to_contain_text("Till 9")
