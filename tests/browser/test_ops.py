"""The operator console in a real browser: a staff signs in and approves a merchant's
application; the console's main pages pass axe-core with no serious or critical violation."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from playwright.sync_api import Page, expect

from coalition import clock
from coalition.extensions import db
from merchants import reads, services
from tests.ops_helpers import PASSWORD, staff


def test_staff_signs_in_and_approves_an_application(
    page: Page, live_app: Flask, live_url: str, accessible: Callable[[Page], list[str]]
) -> None:
    with live_app.app_context():
        session = db.session()
        staff(session, "support", email="sam@operator.example")
        applicant = services.apply(
            session,
            name="Bäckerei Sonne",
            email="sonne@example.org",
            country="DE",
            category="bakery",
            website=None,
            contact_name="Ann Sonne",
            password_hash="x",
            now=clock.utcnow(),
        ).id
        session.commit()
        db.session.remove()

    page.goto(live_url + "/ops/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to the operator console")
    assert accessible(page) == []
    page.get_by_label("Email").fill("sam@operator.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Operator console")
    assert accessible(page) == []
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Merchants").click()
    expect(page.get_by_role("link", name="Bäckerei Sonne")).to_be_visible()
    assert accessible(page) == []
    page.get_by_role("button", name="Approve Bäckerei Sonne").click()

    expect(page.get_by_role("status")).to_contain_text("The merchant is approved")
    expect(page.get_by_role("heading", level=1)).to_have_text("Bäckerei Sonne")
    assert accessible(page) == []
    with live_app.app_context():
        assert reads.merchant(db.session(), applicant)["status"] == "active"
        db.session.remove()


def test_the_money_pages_pass_axe_for_an_admin(
    page: Page, live_app: Flask, live_url: str, accessible: Callable[[Page], list[str]]
) -> None:
    with live_app.app_context():
        staff(db.session(), "admin", email="ada@operator.example")
        db.session.commit()
        db.session.remove()

    page.goto(live_url + "/ops/sign-in")
    page.get_by_label("Email").fill("ada@operator.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Operator console")

    for name, heading in (
        ("Economics", "Economics"),
        ("Insights", "Insights"),
        ("Audit log", "Audit log"),
    ):
        page.get_by_role("navigation", name="Sections").get_by_role("link", name=name).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        assert accessible(page) == []
    expect(page.get_by_role("cell", name="staff.sign_in")).to_be_visible()
