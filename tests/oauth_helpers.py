"""Driving the OAuth server the way its users do: a live server on a free port, Authlib's own
requests client for the merchant's software, a requests.Session for the member's browser, and
the HTML forms read the way a browser reads them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

REDIRECT_URI = "https://app.example/callback"


def oauth_app(make_app: Callable[..., Flask], **settings: str) -> Flask:
    return make_app(**settings)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the app's own logs say what matters


@contextmanager
def live_server(app: Flask) -> Iterator[str]:
    """Serve `app` over real HTTP on 127.0.0.1 (a free port) while inside; yields its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="oauth-live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclass
class Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(Form(attributes.get("action", "")))
        elif tag == "input" and self.forms and attributes.get("name"):
            self.forms[-1].fields[attributes["name"]] = attributes.get("value", "")


def form(html: str, step: str) -> Form:
    """The page's form for `step` (its hidden `step` field): its action and its fields as the
    page filled them in (the CSRF token among them)."""
    reader = _FormReader()
    reader.feed(html)
    found = [f for f in reader.forms if f.fields.get("step") == step]
    assert found, f"no {step} form on the page:\n{html}"
    return found[0]


def submit(
    browser: requests.Session, page: requests.Response, step: str, **values: str
) -> requests.Response:
    """Fill in and send the `step` form of `page`, as a browser would (no redirect followed
    out of the server: the answer to a consent is a redirect to the app)."""
    found = form(page.text, step)
    return browser.post(
        urljoin(page.url, found.action), data={**found.fields, **values}, allow_redirects=False
    )


def follow(browser: requests.Session, response: requests.Response) -> requests.Response:
    """Follow one redirect that stays on the server (after signing in)."""
    assert response.status_code == 303, (response.status_code, response.text)
    return browser.get(urljoin(response.url, response.headers["Location"]))


def sign_in_and_answer(
    browser: requests.Session,
    authorization_url: str,
    email: str,
    password: str,
    decision: str = "allow",
) -> str:
    """A member opens the app's sign-in link, signs in, and allows or denies; returns where
    the server sends the browser back to (the app's redirect URI with its query)."""
    signin_page = browser.get(authorization_url)
    assert signin_page.status_code == 200, signin_page.text
    consent_page = follow(
        browser, submit(browser, signin_page, "signin", email=email, password=password)
    )
    assert consent_page.status_code == 200, consent_page.text
    answer = submit(browser, consent_page, "consent", decision=decision)
    assert answer.status_code == 302, (answer.status_code, answer.text)
    return answer.headers["Location"]


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
