"""The member site in a real browser: a member joins, signs out and in again, sees one balance
with each shop's part, and shows a QR code that changes after its step. The app's clock is
moved (coalition.clock), never waited for. Each page passes axe-core."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from coalition import clock
from coalition.database import table
from coalition.extensions import db
from coalition.members.models import Member
from tests import factories as f

EMAIL = "nadia@example.org"
PASSWORD = "a long enough password"


def _earn_at_two_shops(app: Flask) -> None:
    """Purchases at two partners, as their tills would record them."""
    with app.app_context():
        session = db.session()
        member_id = session.execute(
            select(table(Member).c.id).where(table(Member).c.email == EMAIL)
        ).scalar_one()
        f.purchase(session, member_id, f.merchant(session, "Apotheke"), 120)
        f.purchase(session, member_id, f.merchant(session, "Bäckerei"), 45)
        session.commit()


def _sign_in(page: Page, base: str) -> None:
    page.goto(base + "/me/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to your points")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_a_member_joins_signs_in_sees_the_balance_per_shop_and_a_code_that_changes(
    page: Page,
    live_url: str,
    live_app: Flask,
    accessible: Callable[[Page], list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page.goto(live_url + "/")
    page.get_by_role("link", name="My points").click()
    page.get_by_role("link", name="Join the coalition").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Join the coalition")
    assert accessible(page) == []
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Name (optional)").fill("Nadia")
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Nadia, your points")
    expect(page.get_by_role("status")).to_contain_text("Welcome! Your card number is")
    expect(page.locator("main")).to_contain_text("adds 100 points")
    assert accessible(page) == []

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    assert accessible(page) == []

    _earn_at_two_shops(live_app)
    _sign_in(page, live_url)
    by_shop = page.get_by_role("table", name="Points by shop")
    expect(by_shop.get_by_role("row", name="Apotheke 120")).to_be_visible()
    expect(by_shop.get_by_role("row", name="Bäckerei 45")).to_be_visible()
    expect(page.locator(".stat").first).to_contain_text("165")
    assert accessible(page) == []

    page.get_by_role("link", name="History").click()
    expect(page.get_by_role("row").filter(has_text="Bäckerei")).to_contain_text("+45")
    assert accessible(page) == []

    # The app's clock 25 seconds before the code's step ends; the page's timers on a clock the
    # test moves.
    start = datetime(2026, 11, 28, 15, 0, 5, tzinfo=UTC)
    monkeypatch.setattr(clock, "utcnow", lambda: start)
    page.clock.install()
    page.get_by_role("link", name="My code").click()
    qr = page.locator("#code svg")
    expect(qr).to_be_visible()
    expect(qr).to_have_attribute("role", "img")
    digits = page.locator("#code-digits")
    first_code, first_qr = digits.inner_text(), qr.inner_html()
    assert re.fullmatch(r"\d{6}", first_code)
    # Without JavaScript, the page would reload itself when the step ends.
    assert 'http-equiv="refresh" content="25"' in page.locator("noscript").inner_html()
    assert accessible(page) == []

    # The step ends: the page's script fetches the next code and swaps it in, no reload.
    page.evaluate("window.sameDocument = true")
    monkeypatch.setattr(clock, "utcnow", lambda: start + timedelta(seconds=30))
    page.clock.run_for(25_000)
    expect(digits).not_to_have_text(first_code)
    assert re.fullmatch(r"\d{6}", digits.inner_text())
    assert page.locator("#code svg").inner_html() != first_qr
    assert page.evaluate("window.sameDocument") is True
