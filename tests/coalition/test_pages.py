"""The frame of the three faces (SPEC 3.9): the landing page, the headers every page carries,
the language a visitor gets, HTML error pages, CSRF on forms and the sign-in throttle."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask, render_template_string, request
from flask.testing import FlaskClient

from coalition.web import pages


def test_the_landing_page_says_what_the_coalition_is_and_leads_to_the_api_docs(
    client: FlaskClient,
) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "One points currency, many shops" in html
    assert 'href="/api/v1/docs"' in html
    assert "coalition.css" in html
    with client.get("/assets/coalition.css") as stylesheet:
        assert stylesheet.status_code == 200 and stylesheet.mimetype == "text/css"


def test_every_page_carries_a_strict_content_security_policy(client: FlaskClient) -> None:
    response = client.get("/")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    html = response.get_data(as_text=True)
    assert "<script>" not in html and "<style" not in html and " style=" not in html


def test_the_language_follows_the_browser_and_the_switch_overrides_it(
    client: FlaskClient,
) -> None:
    english = client.get("/", headers={"Accept-Language": "de-DE,en;q=0.5"})
    assert '<html lang="en">' in english.get_data(as_text=True)
    russian = client.get("/", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    assert '<html lang="ru">' in russian.get_data(as_text=True)
    assert "Одна валюта баллов" in russian.get_data(as_text=True)

    switch = client.get("/language/en?next=/")
    assert switch.status_code == 303 and switch.headers["Location"] == "/"
    after = client.get("/", headers={"Accept-Language": "ru"})
    assert '<html lang="en">' in after.get_data(as_text=True)


def test_the_language_switch_never_sends_a_visitor_to_another_site(client: FlaskClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        response = client.get("/language/ru", query_string={"next": target})
        assert response.headers["Location"] == "/"


def test_an_unknown_page_is_an_html_page_and_an_unknown_api_path_stays_a_problem(
    client: FlaskClient,
) -> None:
    page = client.get("/portal/no-such-page")
    assert page.status_code == 404
    assert page.mimetype == "text/html"
    assert "Page not found" in page.get_data(as_text=True)
    assert "Content-Security-Policy" in page.headers
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.mimetype == "application/problem+json"


@pytest.fixture
def face_app(make_app: Callable[..., Flask]) -> Flask:
    """An app with one more face, whose form signs in against a fixed password."""
    app = make_app(RATE_LIMIT_SIGNIN="1000/minute")
    face = pages.face_blueprint("trial", __name__, "/trial")

    @face.route("/signin", methods=["GET", "POST"])
    def signin() -> tuple[str, int]:
        if request.method == "GET":
            return render_template_string(
                '<form method="post"><input name="csrf_token" value="{{ csrf_token() }}"></form>'
            ), 200
        email = request.form["email"]
        pages.signin_throttle("trial", email)
        if request.form["password"] != "right":
            pages.signin_failed("trial", email)
            return "wrong", 200
        pages.signin_succeeded("trial", email)
        pages.renew_session(who=email)
        return "in", 200

    app.register_blueprint(face)
    pages.declare_public(app)
    return app


def _token(client: FlaskClient) -> str:
    form = client.get("/trial/signin").get_data(as_text=True)
    found = re.search(r'value="([^"]+)"', form)
    assert found is not None
    return found.group(1)


def test_a_form_posted_without_its_csrf_token_is_refused(face_app: Flask) -> None:
    client = face_app.test_client()
    refused = client.post("/trial/signin", data={"email": "a@example.com", "password": "right"})
    assert refused.status_code == 400
    assert "This form has expired" in refused.get_data(as_text=True)
    accepted = client.post(
        "/trial/signin",
        data={"email": "a@example.com", "password": "right", "csrf_token": _token(client)},
    )
    assert accepted.get_data(as_text=True) == "in"


def test_wrong_passwords_lock_the_account_for_a_while_even_with_the_right_one(
    face_app: Flask,
) -> None:
    client = face_app.test_client()
    token = _token(client)

    def attempt(password: str, email: str = "victim@example.com") -> tuple[int, str]:
        response = client.post(
            "/trial/signin", data={"email": email, "password": password, "csrf_token": token}
        )
        return response.status_code, response.get_data(as_text=True)

    assert [attempt("guess") for _ in range(5)] == [(200, "wrong")] * 5
    status, html = attempt("right")
    assert status == 429 and "Too many attempts" in html
    assert attempt("right", "VICTIM@example.com")[0] == 429  # the same account in any case
    assert attempt("right", "someone-else@example.com") == (200, "in")


def test_signing_in_renews_the_session(face_app: Flask) -> None:
    client = face_app.test_client()
    token = _token(client)
    with client.session_transaction() as before:
        before["left-over"] = "from the visitor"
    client.post(
        "/trial/signin", data={"email": "a@example.com", "password": "right", "csrf_token": token}
    )
    with client.session_transaction() as after:
        assert "left-over" not in after
        assert after["who"] == "a@example.com"
        assert after[pages.SESSION_ID]
