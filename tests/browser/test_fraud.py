"""The fraud report in a real browser: support staff open it from the console's navigation,
read a self-dealing alert's evidence, and dismiss it with a reason; it moves to the dismissed
tab with the reason and who decided. Each page passes axe-core."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from playwright.sync_api import Page, expect

from coalition.extensions import db
from coalition.fraud import report
from tests import factories as f
from tests.coalition.test_fraud_report import DAY, LATER, ZONE, _self_dealt
from tests.ops_helpers import PASSWORD as STAFF_PASSWORD
from tests.ops_helpers import staff


def test_support_dismisses_a_self_dealing_alert_with_a_reason(
    page: Page, live_url: str, live_app: Flask, accessible: Callable[[Page], list[str]]
) -> None:
    with live_app.app_context():
        session = db.session()
        staff(session, "support", email="sam@operator.example")
        _self_dealt(session, f.merchant(session, "Späti Ost"), 5, timedelta(minutes=5))
        report.run(session, DAY, ZONE, LATER)
        session.commit()
        db.session.remove()

    page.goto(live_url + "/ops/sign-in")
    page.get_by_label("Email").fill("sam@operator.example")
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Fraud").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Fraud report")
    alert = page.get_by_role("region", name="Self-dealing")
    expect(alert).to_contain_text("redeemed points its own till had issued")
    expect(alert).to_contain_text("Späti Ost")
    expect(alert).to_contain_text("5 members, 100 %")
    assert accessible(page) == []

    alert.get_by_label("Why is this no fraud?").fill("A tasting evening, checked by phone")
    alert.get_by_role("button", name="Dismiss").click()

    expect(page.get_by_role("status")).to_contain_text("The alert is dismissed")
    expect(page.get_by_text("No alert in this state")).to_be_visible()
    page.get_by_role("link", name="Dismissed (1)").click()
    expect(page.get_by_text("A tasting evening, checked by phone")).to_be_visible()
    expect(page.get_by_text("sam@operator.example,")).to_be_visible()
    assert accessible(page) == []
