"""Finance staff close a day in a real browser (SPEC 3.9, issue 12): sign in to the console, settle
a day that has ended, see its positions, open the month's report with its two charts and download
its PDF; each page passes axe-core with no serious or critical violation."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from coalition.extensions import db
from tests import factories as f
from tests.ops_helpers import PASSWORD, staff


def test_staff_settle_a_day_open_the_months_report_and_download_its_pdf(
    page: Page, live_app: Flask, live_url: str, accessible: Callable[[Page], list[str]]
) -> None:
    with live_app.app_context():
        session = db.session()
        cafe, bakery = f.merchant(session, "Café Nord"), f.merchant(session, "Bäckerei Süd")
        alice = f.member(session)
        f.purchase(session, alice, cafe, 80)
        f.redeem(session, alice, bakery, 50, now=f.T0 + timedelta(hours=2))
        finance = staff(session, "finance")
        session.commit()

    page.goto(live_url + "/ops/")
    page.get_by_label("Email").fill(finance.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Settlement").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Settlement runs")
    assert accessible(page) == []

    page.get_by_label("Business day").fill("2026-03-02")
    page.get_by_role("button", name="Settle this day").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Settlement of 2026-03-02")
    expect(page.get_by_role("status")).to_contain_text("is settled for good")
    cafe_row = page.get_by_role("row").filter(has_text="Café Nord")
    expect(cafe_row).to_contain_text("1.00 EUR")
    expect(page.get_by_role("row").filter(has_text="Bäckerei Süd")).to_contain_text("-0.50")
    assert accessible(page) == []

    page.get_by_role("link", name="The report of March 2026").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("March 2026")
    expect(page.get_by_role("img", name="Net position per merchant")).to_be_visible()
    expect(
        page.get_by_role("img", name="Points of each issuer redeemed at each redeemer")
    ).to_be_visible()
    assert accessible(page) == []

    with page.expect_download() as arrived:
        page.get_by_role("link", name="Download PDF").click()
    download = arrived.value
    assert download.suggested_filename == "settlement-report-2026-03.pdf"
    with open(download.path(), "rb") as pdf:
        reader = PdfReader(io.BytesIO(pdf.read()))
    text = "".join(p.extract_text() for p in reader.pages)
    assert "March 2026" in text and "Café Nord" in text and "Bäckerei Süd" in text

    for link, heading in (("Payments", "Payments"), ("Liability", "Liability")):
        page.get_by_role("navigation", name="Sections").get_by_role("link", name=link).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        assert accessible(page) == []
