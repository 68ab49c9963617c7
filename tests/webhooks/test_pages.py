"""The portal's webhooks screen, `/portal/webhooks` (SPEC 3.6, 3.9), with the Flask client and no
JavaScript: add an endpoint (the secret shown once), its page (turn off and on, a new secret,
a test event and the delivery log, redeliver, delete after a confirmation), an unsafe address
refused with its reason, and the notice when the platform turned an endpoint off. Deliveries go
to a real local HTTPS receiver and are verified with the Standard Webhooks library (W1)."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coalition import clock
from tests.merchants.test_portal_pages import _merchant, _sign_in, _text, _token
from tests.webhooks.engine_helpers import event
from tests.webhooks.receiver import Reply
from webhooks.models import webhook_endpoints
from webhooks.tasks import pump_once

SECRET = re.compile(r'class="secret">(whsec_[^<]+)<')
PAGE = re.compile(r"/portal/webhooks/(whe_[A-Za-z0-9]+)")


def _add(client: FlaskClient, url: str, **more: Any) -> Any:
    return client.post(
        "/portal/webhooks",
        data={"url": url, "csrf_token": _token(client, "/portal/webhooks"), **more},
    )


def _press(client: FlaskClient, page: str, action: str) -> Any:
    return client.post(action, data={"csrf_token": _token(client, page)})


def test_a_merchant_adds_an_endpoint_sees_the_secret_once_and_tests_it(
    client: FlaskClient, session: Session, webhook_app, receiver
) -> None:
    _merchant(session, "hooks@shop.example")
    _sign_in(client, "hooks@shop.example")
    listing = client.get("/portal/webhooks")
    assert listing.status_code == 200
    assert "No endpoints yet" in _text(listing.get_data(as_text=True))

    made = _add(
        client,
        receiver.url("/p"),
        events=["purchase.created", "statement.issued"],
        description="Till sync",
    )
    assert made.status_code == 201
    html = made.get_data(as_text=True)
    secret = SECRET.search(html)
    assert secret is not None
    assert "copy it now" in _text(html)
    endpoint_id = PAGE.search(html)
    assert endpoint_id is not None
    page = f"/portal/webhooks/{endpoint_id.group(1)}"
    receiver.expect("/p", secret.group(1))

    shown = client.get(page).get_data(as_text=True)
    assert SECRET.search(shown) is None and secret.group(1) not in shown
    assert secret.group(1) not in client.get("/portal/webhooks").get_data(as_text=True)

    tested = _press(client, page, f"{page}/test")
    assert tested.status_code == 303
    pump_once()
    [request] = receiver.wait_for(1)
    assert receiver.verify(request)["type"] == "webhook_endpoint.test"
    log = _text(client.get(page).get_data(as_text=True))
    assert "webhook_endpoint.test" in log and request.headers["webhook-id"] in log
    assert "200" in log
    listed = _text(client.get("/portal/webhooks").get_data(as_text=True))
    assert "delivered (200)" in listed and "Till sync" in listed


def test_redeliver_turn_off_and_on_rotate_and_delete_after_confirming(
    client: FlaskClient, session: Session, webhook_app, receiver
) -> None:
    shop = _merchant(session, "more@shop.example")
    _sign_in(client, "more@shop.example")
    made = _add(client, receiver.url("/m")).get_data(as_text=True)
    secret = SECRET.search(made)
    endpoint_id = PAGE.search(made)
    assert secret is not None and endpoint_id is not None
    receiver.expect("/m", secret.group(1))
    page = f"/portal/webhooks/{endpoint_id.group(1)}"

    evt = event(session, "purchase.created", shop, clock.utcnow())
    receiver.script(Reply(500))
    pump_once()
    receiver.wait_for(1)
    assert "500" in _text(client.get(page).get_data(as_text=True))
    again = _press(client, page, f"{page}/redeliver/{evt}")
    assert again.status_code == 303
    pump_once()
    second = receiver.wait_for(2)[1]
    assert second.headers["webhook-id"] == evt

    off = client.get(_press(client, page, f"{page}/disable").location)
    assert "Turn on" in _text(off.get_data(as_text=True))
    on = client.get(_press(client, page, f"{page}/enable").location)
    assert "Turn off" in _text(on.get_data(as_text=True))

    rotated = _press(client, page, f"{page}/rotate").get_data(as_text=True)
    new = SECRET.search(rotated)
    assert new is not None and new.group(1) != secret.group(1)
    assert "Old secret signs until" in _text(rotated)

    confirm = client.get(f"{page}/delete")
    assert "Delete the endpoint?" in _text(confirm.get_data(as_text=True))
    gone = _press(client, f"{page}/delete", f"{page}/delete")
    assert gone.status_code == 303
    assert client.get(page).status_code == 404


def test_an_unsafe_address_is_refused_with_its_reason_and_nothing_is_made(
    client: FlaskClient, session: Session, app
) -> None:
    _merchant(session, "safe@shop.example")
    _sign_in(client, "safe@shop.example")
    refused = _add(client, "https://10.1.2.3/hook")
    assert refused.status_code == 422
    assert "public internet addresses" in _text(refused.get_data(as_text=True))
    plain = _add(client, "http://example.com/hook")
    assert plain.status_code == 422
    assert "https://" in _text(plain.get_data(as_text=True))
    assert session.execute(select(func.count()).select_from(webhook_endpoints)).scalar_one() == 0


def test_an_endpoint_turned_off_by_the_platform_is_named_on_the_dashboard_and_the_page(
    client: FlaskClient, session: Session, webhook_app, receiver
) -> None:
    shop = _merchant(session, "gone@shop.example")
    _sign_in(client, "gone@shop.example")
    made = _add(client, receiver.url("/g")).get_data(as_text=True)
    secret = SECRET.search(made)
    assert secret is not None
    receiver.expect("/g", secret.group(1))
    event(session, "purchase.created", shop, clock.utcnow())
    receiver.script(Reply(410))
    pump_once()
    receiver.wait_for(1)
    for path in ("/portal/", "/portal/webhooks"):
        text = _text(client.get(path).get_data(as_text=True))
        assert "Webhook endpoints turned off" in text, path
        assert "410 Gone" in text and "turn the endpoint on again" in text, path


def test_another_merchants_endpoint_page_is_not_found(
    client: FlaskClient, session: Session, webhook_app, receiver
) -> None:
    _merchant(session, "a@shop.example", name="A")
    _sign_in(client, "a@shop.example")
    made = _add(client, receiver.url("/a")).get_data(as_text=True)
    endpoint_id = PAGE.search(made)
    assert endpoint_id is not None
    page = f"/portal/webhooks/{endpoint_id.group(1)}"
    _press(client, "/portal/webhooks", "/portal/sign-out")
    _merchant(session, "b@shop.example", name="B")
    _sign_in(client, "b@shop.example")
    assert client.get(page).status_code == 404
    token = _token(client, "/portal/webhooks")
    for action in ("test", "rotate", "disable", "delete"):
        answer = client.post(f"{page}/{action}", data={"csrf_token": token})
        assert answer.status_code == 404, action
