"""The operator console's sign-in and access (SPEC 3.9): a password, then a TOTP code when the
staff has one; in production admin and finance must set one up first; support opens no money
page and sees no link to one; a form without its CSRF token is refused; wrong passwords lock
the account for a while."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from coalition import audit, clock
from coalition.staff import services
from tests.ops_helpers import PASSWORD, csrf_token, sign_in_as, staff


def _sign_in(client: FlaskClient, email: str, password: str = PASSWORD, next: str = "") -> object:
    token = csrf_token(client, "/ops/sign-in")
    return client.post(
        "/ops/sign-in",
        data={"email": email, "password": password, "next": next, "csrf_token": token},
    )


def test_a_signed_out_visitor_is_sent_to_sign_in_and_comes_back_after(
    client: FlaskClient, session: Session
) -> None:
    made = staff(session, "finance")
    session.commit()

    asked = client.get("/ops/audit?action=staff.sign_in")
    assert asked.status_code == 302
    assert asked.headers["Location"].startswith("/ops/sign-in?next=")
    page = client.get(asked.headers["Location"]).get_data(as_text=True)
    assert 'value="/ops/audit?action=staff.sign_in"' in page

    answer = _sign_in(client, "FINANCE@operator.example", next="/ops/audit?action=staff.sign_in")
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/ops/audit?action=staff.sign_in"
    home = client.get("/ops/").get_data(as_text=True)
    assert made.email in home and "Sign out" in home
    signed = audit.events(session, action="staff.sign_in").rows
    assert [e["actor_label"] for e in signed] == [made.email]


def test_a_wrong_password_says_so_and_does_not_sign_in(
    client: FlaskClient, session: Session
) -> None:
    staff(session, "admin")
    session.commit()

    answer = _sign_in(client, "admin@operator.example", "wrong password here")
    assert answer.status_code == 200
    assert "The email or password is not right." in answer.get_data(as_text=True)
    assert client.get("/ops/").status_code == 302


def test_the_sign_in_never_sends_a_staff_to_another_site(
    client: FlaskClient, session: Session
) -> None:
    staff(session, "admin")
    session.commit()
    answer = _sign_in(client, "admin@operator.example", next="https://evil.example/ops")
    assert answer.headers["Location"] == "/ops/"


def test_a_staff_with_a_second_factor_also_gives_a_code(
    client: FlaskClient, session: Session
) -> None:
    made = staff(session, "finance")
    secret = services.new_totp_secret()
    earlier = clock.utcnow() - timedelta(minutes=5)
    services.confirm_totp(session, made, secret, pyotp.TOTP(secret).at(earlier), earlier)
    session.commit()

    answer = _sign_in(client, made.email)
    assert answer.status_code == 303 and answer.headers["Location"] == "/ops/sign-in/code"
    assert client.get("/ops/").status_code == 302  # not signed in before the code
    token = csrf_token(client, "/ops/sign-in/code")
    wrong = client.post("/ops/sign-in/code", data={"code": "000000", "csrf_token": token})
    assert "The code is not right" in wrong.get_data(as_text=True)
    right = client.post(
        "/ops/sign-in/code", data={"code": pyotp.TOTP(secret).now(), "csrf_token": token}
    )
    assert right.status_code == 303 and right.headers["Location"] == "/ops/"
    assert client.get("/ops/").status_code == 200


@pytest.fixture
def production_client(make_app: Callable[..., Flask], session: Session) -> FlaskClient:
    app = make_app(COALITION_ENV="production", SECRET_KEY="production-secret-key-for-tests")
    app.config["SESSION_COOKIE_SECURE"] = False  # the test client speaks plain HTTP
    from tests.conftest import _CommittingClient

    return _CommittingClient(app, app.response_class, use_cookies=True)


def test_in_production_admin_and_finance_set_up_a_second_factor_before_anything_else(
    production_client: FlaskClient, session: Session
) -> None:
    client = production_client
    admin = sign_in_as(client, session, "admin")

    sent = client.get("/ops/")
    assert sent.status_code == 302 and sent.headers["Location"] == "/ops/second-factor"
    assert client.get("/ops/audit").headers["Location"] == "/ops/second-factor"
    page = client.get("/ops/second-factor").get_data(as_text=True)
    assert "<svg" in page and "Your role moves money" in page
    secret = re.search(r'class="secret">([A-Z2-7]+)<', page)
    assert secret is not None
    token = csrf_token(client, "/ops/second-factor")
    done = client.post(
        "/ops/second-factor",
        data={"code": pyotp.TOTP(secret.group(1)).now(), "csrf_token": token},
    )
    assert done.status_code == 303
    assert client.get("/ops/").status_code == 200
    found = services.find_staff(session, admin.id)
    assert found is not None and found.has_totp


def test_in_production_support_needs_no_second_factor(
    production_client: FlaskClient, session: Session
) -> None:
    sign_in_as(production_client, session, "support")
    assert production_client.get("/ops/").status_code == 200


def test_support_opens_no_money_page_and_sees_no_link_to_one(
    client: FlaskClient, session: Session
) -> None:
    sign_in_as(client, session, "support")

    home = client.get("/ops/").get_data(as_text=True)
    assert 'href="/ops/audit"' not in home
    assert 'href="/ops/economics"' not in home
    assert 'href="/ops/merchants"' in home
    refused = client.get("/ops/audit")
    assert refused.status_code == 403 and "Not allowed" in refused.get_data(as_text=True)
    assert client.get("/ops/economics").status_code == 403


def test_finance_sees_the_money_pages(client: FlaskClient, session: Session) -> None:
    sign_in_as(client, session, "finance")
    home = client.get("/ops/").get_data(as_text=True)
    assert 'href="/ops/audit"' in home and 'href="/ops/economics"' in home
    assert client.get("/ops/audit").status_code == 200


def test_the_audit_log_page_filters_and_pages(client: FlaskClient, session: Session) -> None:
    ann = audit.Actor.staff(7, "ann@operator.example")
    for n in range(26):
        audit.record(
            session,
            ann,
            "merchant.approve",
            "merchant",
            f"mer_{n:02}",
            before={"status": "pending"},
            after={"status": "active"},
        )
    audit.record(
        session, audit.Actor.operator_client("cli_batch"), "client.revoke", "client", "cli_x"
    )
    sign_in_as(client, session, "admin")

    everything = client.get("/ops/audit").get_data(as_text=True)
    assert "<td>client.revoke</td>" in everything and 'rel="next"' in everything
    assert "&#34;status&#34;: &#34;active&#34;" in everything or '"status": "active"' in everything
    filtered = client.get("/ops/audit?actor=cli_batch").get_data(as_text=True)
    assert "<td>client.revoke</td>" in filtered
    assert "<td>merchant.approve</td>" not in filtered
    one = client.get("/ops/audit?target=merchant:mer_03&action=merchant.approve")
    assert "mer_03" in one.get_data(as_text=True) and "mer_04" not in one.get_data(as_text=True)
    none = client.get("/ops/audit?actor=nobody&since=2026-01-01&until=2026-01-02")
    assert "No event matches this filter" in none.get_data(as_text=True)


def test_a_form_posted_without_its_csrf_token_is_refused(
    client: FlaskClient, session: Session
) -> None:
    made = staff(session, "admin")
    session.commit()
    answer = client.post("/ops/sign-in", data={"email": made.email, "password": PASSWORD})
    assert answer.status_code == 400
    assert "This form has expired" in answer.get_data(as_text=True)


def test_repeated_wrong_passwords_lock_the_account(
    make_app: Callable[..., Flask], session: Session
) -> None:
    app = make_app(RATE_LIMIT_SIGNIN="1000/minute")
    from tests.conftest import _CommittingClient

    client = _CommittingClient(app, app.response_class, use_cookies=True)
    made = staff(session, "admin", email="locked@operator.example")
    session.commit()
    for _ in range(5):
        assert _sign_in(client, made.email, "not the password").status_code == 200
    locked = _sign_in(client, made.email)
    assert locked.status_code == 429
    assert "Too many attempts" in locked.get_data(as_text=True)


def test_signing_out_ends_the_session(client: FlaskClient, session: Session) -> None:
    sign_in_as(client, session, "admin")
    token = csrf_token(client, "/ops/")
    out = client.post("/ops/sign-out", data={"csrf_token": token})
    assert out.status_code == 303
    assert client.get("/ops/").status_code == 302
