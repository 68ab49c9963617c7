"""Prize draws in a real browser: a member with points opens its draws page, enters a draw with
the button, sees its entries and its lower balance; once the draw is closed it finds its
pseudonym and the public page with the program that verifies the winners. Staff open and close
a draw in the console. Each page passes axe-core."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from playwright.sync_api import Page, expect

from coalition import clock
from coalition.extensions import db
from coalition.members import credentials
from draws import services
from tests import factories as f
from tests.draws.helpers import OPERATOR, open_draw, purchase_now
from tests.ops_helpers import PASSWORD as STAFF_PASSWORD
from tests.ops_helpers import staff

EMAIL = "ines@example.org"
PASSWORD = "a long enough password"


def test_a_member_enters_a_draw_in_me_and_checks_the_result(
    page: Page, live_url: str, live_app: Flask, accessible: Callable[[Page], list[str]]
) -> None:
    with live_app.app_context():
        session = db.session()
        member = credentials.join(
            session, now=clock.utcnow(), card_prefix="9999", email=EMAIL, password=PASSWORD
        ).id
        purchase_now(session, member, f.merchant(session, "Apotheke"), 100_000)  # 1,000 points
        draw = open_draw(session, prize="A weekend in Riga", entry_points=100)
        session.commit()

    page.goto(live_url + "/me/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Draws").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Prize draws")
    expect(page.get_by_role("heading", name="A weekend in Riga")).to_be_visible()
    assert accessible(page) == []

    page.get_by_label("Entries at 100 points each").fill("3")
    page.get_by_role("button", name="Enter").click()

    expect(page.get_by_role("status")).to_contain_text("3 entries for 300 points")
    expect(page.get_by_text("Your entries so far: 3 with points, 0 free.")).to_be_visible()
    page.get_by_role("link", name="Balance").click()
    balance = page.locator(".stat").filter(has_text="Balance").locator(".value")
    expect(balance).to_have_text("700")

    with live_app.app_context():
        session = db.session()
        closed = services.close(session, draw, now=clock.utcnow(), actor=OPERATOR)
        session.commit()
        db.session.remove()
    [winner] = closed.winners or []

    page.goto(live_url + "/me/draws")
    expect(page.get_by_text("You won!")).to_be_visible()
    expect(page.get_by_role("cell", name=winner)).to_be_visible()
    page.get_by_role("link", name="A weekend in Riga").click()
    expect(page.get_by_role("heading", name="Verify it yourself")).to_be_visible()
    expect(page.get_by_role("listitem").filter(has_text=winner)).to_be_visible()
    assert accessible(page) == []


def test_staff_open_and_close_a_draw_in_the_console(
    page: Page, live_url: str, live_app: Flask, accessible: Callable[[Page], list[str]]
) -> None:
    with live_app.app_context():
        session = db.session()
        staff(session, "support", email="sam@operator.example")
        f.merchant(session, "Bäckerei Sonne")
        session.commit()
        db.session.remove()
    closes = (clock.utcnow() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")

    page.goto(live_url + "/ops/sign-in")
    page.get_by_label("Email").fill("sam@operator.example")
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Draws").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Prize draws")
    assert accessible(page) == []

    page.get_by_label("Prize").fill("A cake a week for a year")
    page.get_by_label("Points per entry").fill("20")
    page.get_by_label("Closes at").fill(closes)
    page.get_by_label("Number of winners").fill("2")
    page.get_by_label("Bäckerei Sonne").check()
    page.get_by_label("Smallest purchase that earns a free entry").fill("15.00")
    page.get_by_role("button", name="Open the draw").click()

    expect(page.get_by_role("status")).to_contain_text("The draw is open")
    expect(page.get_by_role("heading", level=1)).to_have_text("A cake a week for a year")
    assert accessible(page) == []
    page.get_by_role("button", name="Close the draw now").click()
    expect(page.get_by_role("status")).to_contain_text("The draw is closed")
    expect(page.get_by_role("rowheader", name="Seed", exact=True)).to_be_visible()
    assert accessible(page) == []
