"""The insights pages: the portal's Insights tab (a merchant's figures, three SVG charts and
their tables, a bad range shown on the form) and /ops/insights (the coalition's figures, a
partner picked, liability, breakage and balance of trade; money roles only)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from coalition import clock
from coalition.database import table
from coalition.members.services import create_member
from merchants import services
from tests import factories
from tests.ops_helpers import sign_in_as

PASSWORD = "a long enough password"


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _merchant(session: Session) -> int:
    standing = services.apply(
        session,
        name="Apotheke",
        email="anna@apotheke.example",
        country="DE",
        category="pharmacy",
        website=None,
        contact_name="Anna",
        password_hash=generate_password_hash(PASSWORD),
        now=clock.utcnow(),
    )
    services.approve_merchant(session, standing.id, clock.utcnow())
    merchants = table(services.Merchant)
    shop = int(
        session.execute(
            select(merchants.c.id).where(merchants.c.public_id == standing.id)
        ).scalar_one()
    )
    return shop


def _sign_in(client: FlaskClient) -> None:
    """Signed in, the portal acts as the merchant's tenant: arrange the ledger before."""
    html = client.get("/portal/sign-in").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
    assert token is not None
    client.post(
        "/portal/sign-in",
        data={"email": "anna@apotheke.example", "password": PASSWORD, "csrf_token": token[1]},
    )


def test_the_insights_tab_shows_the_figures_charts_and_tables(
    client: FlaskClient, session: Session
) -> None:
    """m1 (joined at Nachbar) buys at the pharmacy on Jan 10 (12.00) and Feb 3 (8.00); m2 once
    on Jan 20 (40.00). Won 1 (m1, back); repeat 1 of 2: 50.00 %; basket 60.00 / 3 = 20.00; top
    20 % = the first of 2: m2 40.00 of 60.00 = 66.67 %. Cohort Jan {m1, m2}: Jan 2, Feb 1."""
    shop = _merchant(session)
    neighbour = factories.merchant(session, "Nachbar")
    m1 = create_member(session, now=factories.T0, enrolled_by_merchant_id=neighbour)[0]
    m2 = create_member(session, now=factories.T0)[0]
    for member, amount, day in ((m1, 1200, 10), (m2, 4000, 20)):
        factories.purchase(
            session, member, shop, amount // 100, amount_minor=amount,
            now=datetime(2026, 1, day, 10, tzinfo=UTC),
        )  # fmt: skip
    factories.purchase(
        session, m1, shop, 8, amount_minor=800, now=datetime(2026, 2, 3, 10, tzinfo=UTC)
    )

    _sign_in(client)
    page = client.get("/portal/insights?from=2026-01-01&to=2026-02-28")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    text = _text(html)
    assert "Overview Insights" in text
    for shown in (
        "Members won through the coalition 1",
        "… of whom came back 1",
        "Customers 2",
        "Repeat-purchase rate 50.00 %",
        "Sales from the top 20 percent of customers 66.67 %",
        "Average basket (EUR) 20.00",
        "Points issued 60",
        "2026-01 2 2 1",  # the cohort table's row
        "20 % 66.67 %",  # the concentration table's second row
    ):
        assert shown in text, shown
    assert html.count("<svg") == 3
    assert "<script" not in html

    refused = client.get("/portal/insights?from=2026-03-01&to=2026-01-01")
    assert refused.status_code == 422
    assert "touch at most 24 months" in refused.get_data(as_text=True)
    assert "<svg" not in refused.get_data(as_text=True)


def test_the_dashboard_links_to_its_insights_tab(client: FlaskClient, session: Session) -> None:
    _merchant(session)
    _sign_in(client)
    html = client.get("/portal/").get_data(as_text=True)
    assert 'href="/portal/insights"' in html


@pytest.mark.parametrize("role", ["admin", "finance"])
def test_the_operator_sees_the_coalition_a_partner_and_the_balance_of_trade(
    client: FlaskClient, session: Session, coalition: dict[str, int], role: str
) -> None:
    """The hand-worked coalition (tests/insights/test_insights.py): Beta picked."""
    beta = session.execute(
        select(table(services.Merchant).c.public_id).where(
            table(services.Merchant).c.id == coalition["b"]
        )
    ).scalar_one()
    sign_in_as(client, session, role)
    page = client.get(f"/ops/insights/?from=2026-01-01&to=2026-03-31&merchant={beta}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    text = _text(html)
    for shown in (
        "Points outstanding now 187",
        "Breakage in the range (points) 50",
        "Beta 2026-01-01 to 2026-03-31",
        "Repeat-purchase rate 50.00 %",  # Beta's
        "Repeat-purchase rate 80.00 %",  # the coalition's
        "Alpha 5 0.05 8 0.08 -3 -0.03",
        "Beta 8 0.08 5 0.05 3 0.03",
        "2026-03 1.0625 0.08 0.9825",
    ):
        assert shown in text, shown
    assert html.count("<svg") == 6


def test_support_staff_may_not_open_the_operators_insights(
    client: FlaskClient, session: Session
) -> None:
    sign_in_as(client, session, "support")
    assert client.get("/ops/insights/").status_code == 403


def test_the_operators_default_range_says_when_the_night_computed_it(
    app, client: FlaskClient, session: Session, coalition: dict[str, int]
) -> None:
    from insights import services, tasks

    zone = app.config["COALITION_TIMEZONE"]
    span = services.operator_default(clock.business_date(clock.utcnow(), zone), zone)
    sign_in_as(client, session, "finance")
    live = _text(client.get("/ops/insights/").get_data(as_text=True))
    assert "computed overnight" not in live
    tasks.precompute_insights(span.last, clock.utcnow())
    kept = _text(client.get("/ops/insights/").get_data(as_text=True))
    assert "were computed overnight, at" in kept
    # The same figures either way (the balance of trade's rows, the coalition's purchases).
    assert "Alpha 5 0.05 8 0.08 -3 -0.03" in kept and "Alpha 5 0.05 8 0.08 -3 -0.03" in live
    assert "Purchases 12" in kept and "Purchases 12" in live
