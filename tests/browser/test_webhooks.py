"""The portal's webhooks screen in a real browser: a merchant adds an endpoint (a local HTTPS
receiver), sees its signing secret once, sends a test event and finds it in the delivery log.
The delivery is verified with the Standard Webhooks library (W1). The page passes axe-core."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
import trustme
from flask import Flask
from playwright.sync_api import Page, expect
from werkzeug.security import generate_password_hash

from coalition import clock
from coalition.extensions import db
from merchants import services
from tests.webhooks.engine_helpers import SigningReceiver
from webhooks.tasks import pump_once

EMAIL = "hooks@berta.example"
PASSWORD = "a long enough password"


@pytest.fixture
def hooks_app(live_app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[Flask]:
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setitem(live_app.config, "WEBHOOKS_ALLOW_PRIVATE", True)
    monkeypatch.setitem(live_app.config, "WEBHOOKS_CA_BUNDLE", str(bundle))
    monkeypatch.setitem(live_app.config, "WEBHOOKS_TIMEOUT_SECONDS", 2.0)
    live_app.extensions["test_webhook_ca"] = ca
    yield live_app


@pytest.fixture
def browser_receiver(hooks_app: Flask) -> Iterator[SigningReceiver]:
    receiver = SigningReceiver(ca=hooks_app.extensions["test_webhook_ca"]).start()
    try:
        yield receiver
        receiver.verify_all()
    finally:
        receiver.stop()


def _merchant(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        standing = services.apply(
            session,
            name="Blumen Berta",
            email=EMAIL,
            country="DE",
            category="flowers",
            website=None,
            contact_name="Berta",
            password_hash=generate_password_hash(PASSWORD),
            now=clock.utcnow(),
        )
        services.approve_merchant(session, standing.id, clock.utcnow())
        session.commit()


def test_a_merchant_adds_an_endpoint_sees_its_secret_once_and_a_test_event_in_the_log(
    page: Page,
    hooks_app: Flask,
    live_url: str,
    browser_receiver: SigningReceiver,
    accessible: Callable[[Page], list[str]],
) -> None:
    _merchant(hooks_app)
    page.goto(live_url + "/portal/sign-in")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Webhooks")
    assert accessible(page) == []

    page.get_by_label("Address (https://…)").fill(browser_receiver.url("/browser"))
    page.get_by_label("Description (optional)").fill("Web shop")
    page.get_by_role("button", name="Add the endpoint").click()
    secret = page.locator("code.secret").inner_text()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/=]+", secret)
    expect(page.get_by_text("copy it now", exact=False).first).to_be_visible()
    browser_receiver.expect("/browser", secret)
    assert accessible(page) == []

    page.get_by_role("link", name="All endpoints").click()
    page.get_by_role("link", name=browser_receiver.url("/browser")).click()
    expect(page.locator("code.secret")).to_have_count(0)
    assert secret not in page.content()

    page.get_by_role("button", name="Send a test event").click()
    expect(page.get_by_role("status").first).to_contain_text("Test event")
    with hooks_app.app_context():
        pump_once()
    [request] = browser_receiver.wait_for(1)
    event_id = request.headers["webhook-id"]
    page.reload()
    log = page.get_by_role("table", name="Delivery log")
    expect(log).to_contain_text("webhook_endpoint.test")
    expect(log).to_contain_text(event_id)
    expect(log).to_contain_text("200")
    assert accessible(page) == []
