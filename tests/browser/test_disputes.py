"""A statement dispute in a real browser (SPEC 3.10, issue 16): a merchant disputes a line of last
month's statement from its portal, finance staff answer it in `/ops/disputes` with a credit note,
and the merchant's next statement shows the note as a line of its own while the disputed one is
unchanged. Each page passes axe-core with no serious or critical violation.

The months are the wall clock's: last month's statement is issued now (so the 14 days are
open), and this month's is made as the nightly job makes it on the 1st of the next."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from flask import Flask
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from coalition import clock
from coalition.database import table
from coalition.extensions import db
from merchants import services
from merchants.models import Merchant
from settlement import runs, statements
from tests import factories as f
from tests.ops_helpers import PASSWORD as STAFF_PASSWORD
from tests.ops_helpers import staff

EMAIL = "partners@aurora.example"
PASSWORD = "a long enough password"


def _months(now: datetime) -> tuple[str, str, datetime]:
    """Last month, this month, and 03:00 UTC on the 1st of the next (when this one is stated)."""
    first = date(now.year, now.month, 1)
    last_month = (first - timedelta(days=1)).strftime("%Y-%m")
    following = (first + timedelta(days=32)).replace(day=1)
    return last_month, first.strftime("%Y-%m"), datetime.combine(following, time(3), UTC)


def _state(session: Session, month: str, now: datetime) -> None:
    """Settle the month's days and state it, as the nightly jobs do on the 1st."""
    first, last = statements.parse_month(month)
    for day in runs.unsettled_days(session, first, last):
        runs.settle(session, day, now)
    statements.issue_month(session, month, now)


def _aurora_with_last_months_statement(app: Flask) -> str:
    """Café Aurora (a portal account) took 200 points a member earned at the bakery last month:
    its statement, issued now, says the coalition owes it 2.00. Its id."""
    now = clock.utcnow()
    last_month, _, _ = _months(now)
    first, _ = statements.parse_month(last_month)
    with app.app_context():
        session = db.session()
        standing = services.apply(
            session,
            name="Café Aurora",
            email=EMAIL,
            country="DE",
            category="cafe",
            website=None,
            contact_name="Aurora",
            password_hash=generate_password_hash(PASSWORD),
            now=now,
        )
        services.approve_merchant(session, standing.id, now)
        merchants = table(Merchant)
        aurora = session.execute(
            select(merchants.c.id).where(merchants.c.public_id == standing.id)
        ).scalar_one()
        bakery, member = f.merchant(session, "Bakery"), f.member(session)
        morning = datetime.combine(first + timedelta(days=4), time(9), UTC)
        f.purchase(session, member, bakery, 300, now=morning)
        f.redeem(session, member, aurora, 200, now=morning + timedelta(days=1))
        _state(session, last_month, now)
        session.commit()
        [row] = [
            s for s in statements.month_statements(session, last_month) if s.name == "Café Aurora"
        ]
        return str(row.public_id)


def test_a_merchant_disputes_a_line_staff_credit_it_and_the_next_statement_shows_the_note(
    page: Page,
    browser: Browser,
    live_app: Flask,
    live_url: str,
    accessible: Callable[[Page], list[str]],
) -> None:
    disputed = _aurora_with_last_months_statement(live_app)
    with live_app.app_context():
        finance = staff(db.session(), "finance")
        db.session.commit()

    # The merchant disputes line 1 of last month's statement.
    page.goto(live_url + "/portal/sign-in")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_url}/portal/statements/{disputed}")
    before = page.locator("table.data").first.inner_text()
    expect(page.get_by_role("row").filter(has_text="Points redeemed at your shop")).to_contain_text(
        "2.00"
    )
    assert accessible(page) == []
    page.locator("#line-1 summary").click()  # the line's "Dispute" button opens its form
    page.get_by_label("Why do you dispute line 1?").fill("Our till took 250 points, not 200")
    page.get_by_role("button", name="Dispute line 1").click()
    expect(page.get_by_role("status")).to_contain_text("Line 1 is disputed")
    disputes_table = page.get_by_role("table", name="Disputes")
    expect(disputes_table).to_contain_text("Our till took 250 points, not 200")
    expect(disputes_table).to_contain_text("Open")
    assert accessible(page) == []

    # Finance staff answer it with a credit note of 0.50.
    ops = browser.new_context().new_page()
    ops.goto(live_url + "/ops/")
    ops.get_by_label("Email").fill(finance.email)
    ops.get_by_label("Password").fill(STAFF_PASSWORD)
    ops.get_by_role("button", name="Sign in").click()
    ops.get_by_role("navigation", name="Sections").get_by_role("link", name="Disputes").click()
    expect(ops.get_by_role("heading", level=1)).to_have_text("Statement disputes")
    row = ops.get_by_role("row").filter(has_text="Café Aurora")
    expect(row).to_contain_text("Our till took 250 points, not 200")
    expect(row).to_contain_text("Open")
    assert accessible(ops) == []
    row.get_by_role("link").click()
    ops.get_by_label("Credit note: the coalition owes the merchant").check()
    ops.get_by_label("Amount of the note").fill("0.50")
    ops.get_by_label("Reason (told to the merchant; required to reject)").fill(
        "Confirmed from the till's journal"
    )
    assert accessible(ops) == []
    ops.get_by_role("button", name="Settle the dispute").click()
    expect(ops.get_by_role("status")).to_contain_text("The dispute is settled")
    expect(ops.get_by_role("row").filter(has_text="Café Aurora")).to_contain_text(
        "Resolved with a note: Credit note 0.50 EUR"
    )

    # The merchant sees the answer; this month's statement, made on the 1st, has the note.
    page.reload()
    expect(page.get_by_role("table", name="Disputes")).to_contain_text("Credit note")
    with live_app.app_context():
        _, this_month, stated_at = _months(clock.utcnow())
        _state(db.session(), this_month, stated_at)
        db.session.commit()
    page.goto(live_url + "/portal/statements")
    page.get_by_role("link", name=this_month).first.click()
    note = page.get_by_role("row").filter(has_text="Credit note on statement")
    expect(note).to_contain_text(f"{disputed}")
    expect(note).to_contain_text("0.50")
    expect(page.locator("p.lead")).to_contain_text("The coalition pays Café Aurora EUR 0.50.")
    assert accessible(page) == []

    # The disputed statement is as it was.
    page.goto(f"{live_url}/portal/statements/{disputed}")
    assert page.locator("table.data").first.inner_text() == before
