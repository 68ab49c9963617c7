"""The portal's segments screen in a real browser: a merchant with three customers (two who
agreed to profiling, one who did not) counts a definition without saving it, saves it, and sees
it listed with its count. The page passes axe-core."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from coalition import clock
from coalition.database import table
from coalition.extensions import db
from coalition.privacy import services as privacy
from merchants import services
from merchants.models import Merchant
from tests import factories as f

EMAIL = "segments@berta.example"
PASSWORD = "a long enough password"


def _merchant_with_customers(app: Flask) -> None:
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
        merchant_id = session.execute(
            select(table(Merchant).c.id).where(table(Merchant).c.public_id == standing.id)
        ).scalar_one()
        for points, consents in ((80, True), (70, True), (90, False)):
            member_id = f.member(session)
            f.purchase(session, member_id, merchant_id, points, now=now - timedelta(days=3))
            if consents:
                privacy.set_consents(
                    session, member_id, {"profiling": True}, source=privacy.ME, now=now
                )
        session.commit()


def test_a_merchant_counts_then_saves_a_segment_and_sees_its_count(
    page: Page, live_app: Flask, live_url: str, accessible: Callable[[Page], list[str]]
) -> None:
    _merchant_with_customers(live_app)
    page.goto(live_url + "/portal/sign-in")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Segments").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Segments")
    assert accessible(page) == []

    page.get_by_label("Name", exact=True).fill("Recent customers")
    page.get_by_label("Bought within the last (days)").fill("7")
    page.get_by_role("button", name="Count").click()
    expect(page.locator("#segment-count")).to_have_text("2 members match now.")
    expect(page.get_by_text("No segments yet.")).to_be_visible()

    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Segment saved.")).to_be_visible()
    row = page.get_by_role("row", name="Recent customers")
    expect(row).to_contain_text("recency_days: 7")
    expect(row.get_by_role("cell").nth(2)).to_have_text("2")
    assert accessible(page) == []
