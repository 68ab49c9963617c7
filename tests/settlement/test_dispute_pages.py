"""Disputes on the pages (SPEC 3.10): a merchant disputes a line from its statement's page in the
portal, and sees the dispute and its answer there; finance staff see open disputes first in
`/ops/disputes` and answer one with a note or a rejection; support staff open none of it; a
statement past its window shows no "Dispute" button and refuses a forged form."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from coalition import audit, clock
from settlement import disputes
from tests import factories as f
from tests.merchants.test_portal_pages import _merchant, _sign_in, _text, _token
from tests.ops_helpers import csrf_token, sign_in_as


def _statement(session: Session, merchant_id: int, age: timedelta = timedelta(days=2)) -> str:
    """The merchant's statement (one line, "Points redeemed", -1.50), issued `age` ago: its id."""
    row = f.statement(session, merchant_id, closing="-1.50")
    row.issued_at = clock.utcnow() - age
    session.flush()
    return row.public_id


@pytest.mark.both_backends
def test_a_merchant_disputes_a_line_from_its_statement_page(
    client: FlaskClient, session: Session
) -> None:
    shop = _merchant(session, "dispute@shop.example")
    stated = _statement(session, shop)
    _sign_in(client, "dispute@shop.example")
    path = f"/portal/statements/{stated}"
    assert "Dispute line 1" in client.get(path).get_data(as_text=True)

    blank = client.post(
        f"{path}/disputes", data={"line": "1", "reason": " ", "csrf_token": _token(client, path)}
    )
    assert blank.status_code == 422
    answer = client.post(
        f"{path}/disputes",
        data={"line": "1", "reason": "We took 120 points", "csrf_token": _token(client, path)},
    )

    assert answer.status_code == 303
    page = _text(client.get(path).get_data(as_text=True))
    [made] = disputes.statement_disputes(session, stated, shop)
    assert f"Line 1 is disputed ({made['id']})" in page
    assert f"{made['id']} 1. Points redeemed We took 120 points Open" in page
    assert "Dispute line 1" not in page  # the open line shows "Disputed"


def test_a_statement_past_its_window_has_no_dispute_button_and_refuses_the_form(
    client: FlaskClient, session: Session
) -> None:
    shop = _merchant(session, "late@shop.example")
    stated = _statement(session, shop, age=timedelta(days=20))
    _sign_in(client, "late@shop.example")
    path = f"/portal/statements/{stated}"
    html = client.get(path).get_data(as_text=True)
    assert "Dispute line" not in html and "The time to dispute this statement ended" in html

    answer = client.post(
        f"{path}/disputes",
        data={"line": "1", "reason": "Too late?", "csrf_token": _token(client, path)},
    )
    assert answer.status_code == 422
    assert "could be disputed until" in answer.get_data(as_text=True)
    assert disputes.statement_disputes(session, stated, shop) == []


def test_another_merchants_statement_cannot_be_disputed_from_the_portal(
    client: FlaskClient, session: Session
) -> None:
    _merchant(session, "mine@shop.example")
    other = f.merchant(session, "Other")
    theirs = _statement(session, other)
    _sign_in(client, "mine@shop.example")
    token = _token(client, "/portal/statements")
    answer = client.post(
        f"/portal/statements/{theirs}/disputes",
        data={"line": "1", "reason": "Mine now", "csrf_token": token},
    )
    assert answer.status_code == 404
    assert disputes.statement_disputes(session, theirs, other) == []


@pytest.mark.both_backends
def test_finance_sees_open_disputes_first_and_answers_one_with_a_credit_note(
    client: FlaskClient, session: Session
) -> None:
    early, late = f.merchant(session, "Early"), f.merchant(session, "Late")
    now = clock.utcnow()
    first = disputes.raise_dispute(session, early, _statement(session, early), 1, "First", now)[
        "id"
    ]
    second = disputes.raise_dispute(session, late, _statement(session, late), 1, "Second", now)[
        "id"
    ]
    disputes.resolve(
        session, first, "reject", None, None, "Counted right", audit.Actor("staff", "1", "a"), now
    )
    staff = sign_in_as(client, session, "finance")

    listed = _text(client.get("/ops/disputes").get_data(as_text=True))
    assert listed.index(second) < listed.index(first)  # the open one first
    assert "Open disputes: 1" in listed
    assert "Second" in listed and "Points redeemed" in listed

    path = f"/ops/disputes/{second}"
    bad = client.post(
        path,
        data={"outcome": "credit_note", "amount": "0.001", "csrf_token": csrf_token(client, path)},
    )
    assert bad.status_code == 422
    assert "at most 2 decimals" in bad.get_data(as_text=True)
    answer = client.post(
        path,
        data={
            "outcome": "credit_note",
            "amount": "0.40",
            "reason": "Two purchases were counted twice",
            "csrf_token": csrf_token(client, path),
        },
    )

    assert answer.status_code == 303
    settled = disputes.dispute_view(session, second)
    assert settled["status"] == "resolved"
    assert settled["resolution"]["note"]["amount"] == {"amount": 40, "currency": "EUR"}
    [event] = audit.events(session, action="dispute.resolve", target=second).rows
    assert event["actor_label"] == staff.email
    shown = _text(client.get(path).get_data(as_text=True))
    assert "Credit note 0.40 EUR" in shown and "next statement" in shown
    assert "Settle the dispute" not in shown  # answered once
    again = client.post(
        path,
        data={
            "outcome": "reject",
            "reason": "no",
            "csrf_token": csrf_token(client, "/ops/disputes"),
        },
    )
    assert again.status_code == 409


def test_support_staff_open_no_dispute_page(client: FlaskClient, session: Session) -> None:
    shop = f.merchant(session)
    made = disputes.raise_dispute(
        session, shop, _statement(session, shop), 1, "Why", clock.utcnow()
    )["id"]
    sign_in_as(client, session, "support")
    assert client.get("/ops/disputes").status_code == 403
    assert client.get(f"/ops/disputes/{made}").status_code == 403
    html = client.get("/ops").get_data(as_text=True)
    assert not re.search(r'href="/ops/disputes"', html)
