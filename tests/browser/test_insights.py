"""The portal's Insights tab in a real browser: a merchant signs in, opens the second tab of its
dashboard, sees its figures, the three SVG charts and their tables, then narrows the range to
days before any purchase and sees the figures empty. The page passes axe-core."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from playwright.sync_api import Locator, Page, expect
from werkzeug.security import generate_password_hash

from coalition import clock
from coalition.extensions import db
from coalition.members.services import create_member
from merchants import portal_reads, services
from tests import factories as f

EMAIL = "owner@berta.example"
PASSWORD = "a long enough password"


def _coalition(app: Flask) -> None:
    """Berta's shop and a neighbour: m1 joined at the neighbour and then bought twice at Berta's
    (won through the coalition, and came back); m2 bought once at Berta's, 30.00."""
    with app.app_context():
        session = db.session()
        now = clock.utcnow()
        standing = services.apply(
            session,
            name="Blumen Berta",
            email=EMAIL,
            country="DE",
            category="flowers",
            website=None,
            contact_name="Berta",
            password_hash=generate_password_hash(PASSWORD),
            now=now,
        )
        services.approve_merchant(session, standing.id, now)
        found = portal_reads.merchant_by_public_id(session, standing.id)
        assert found is not None
        berta = found.id
        neighbour = f.merchant(session, "Nachbar")
        m1 = create_member(session, now=now, enrolled_by_merchant_id=neighbour)[0]
        m2 = create_member(session, now=now)[0]
        f.purchase(session, m1, berta, 10, amount_minor=1000, now=now - timedelta(days=3))
        f.purchase(session, m1, berta, 20, amount_minor=2000, now=now - timedelta(days=2))
        f.purchase(session, m2, berta, 30, amount_minor=3000, now=now - timedelta(days=1))
        session.commit()


def _stat(page: Page, label: str) -> Locator:
    return (
        page.locator(".stat")
        .filter(has=page.locator(".label", has_text=re.compile(f"^{re.escape(label)}$")))
        .locator(".value")
    )


def test_a_merchant_reads_its_insights_and_changes_the_range(
    page: Page, live_url: str, live_app: Flask, accessible: Callable[[Page], list[str]]
) -> None:
    _coalition(live_app)
    page.goto(live_url + "/portal/sign-in")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    tabs = page.get_by_role("navigation", name="Dashboard")
    expect(tabs.get_by_role("link", name="Overview")).to_have_attribute("aria-current", "page")
    tabs.get_by_role("link", name="Insights").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Insights")
    # Won: m1; came back: m1; customers m1, m2; repeat m1: 50 %; top 20 % = the first of 2
    # customers (m1, 30.00 of 60.00): 50 %; basket 60.00 / 3 = 20.00.
    for label, value in (
        ("Members won through the coalition", "1"),
        ("… of whom came back", "1"),
        ("Customers", "2"),
        ("Repeat-purchase rate", "50.00 %"),
        ("Sales from the top 20 percent of customers", "50.00 %"),
        ("Average basket (EUR)", "20.00"),
        ("Points issued", "60"),
    ):
        expect(_stat(page, label)).to_have_text(value)
    expect(page.locator(".chart svg")).to_have_count(3)
    expect(page.get_by_role("img", name="Cohort retention", exact=False)).to_be_visible()
    expect(page.get_by_role("region", name="Cohort retention")).to_contain_text("2")
    assert accessible(page) == []

    long_ago = clock.business_date(clock.utcnow(), "Europe/Berlin") - timedelta(days=200)
    page.get_by_label("From", exact=True).fill((long_ago - timedelta(days=10)).isoformat())
    page.get_by_label("To", exact=True).fill(long_ago.isoformat())
    page.get_by_role("button", name="Show").click()
    expect(_stat(page, "Customers")).to_have_text("0")
    expect(page.get_by_text("No first purchases in this range")).to_be_visible()
    assert page.url.endswith(f"to={long_ago.isoformat()}")
