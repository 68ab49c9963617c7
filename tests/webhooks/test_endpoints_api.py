"""The endpoints API (SPEC 3.6): register, list, read, change, delete, the secret shown once, the
16 endpoints' limit, unsafe URLs refused with nothing written, rotation (both signatures verify
during the window), redelivery and the test event. Deliveries go to a real local HTTPS receiver
and every request it gets is verified with the Standard Webhooks library (W1)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from coalition import clock
from coalition.outbox import outbox_events
from tests import factories
from tests.webhooks.engine_helpers import attempts, deliveries, event
from tests.webhooks.receiver import Reply
from webhooks.models import webhook_deliveries, webhook_endpoints
from webhooks.tasks import pump_once

BASE = "/api/v1/webhook-endpoints"


def _shop(session: Session) -> tuple[int, dict[str, str]]:
    shop = factories.merchant(session)
    return shop, factories.merchant_headers(session, shop, "webhooks:write")


def _create(client: FlaskClient, headers: dict[str, str], url: str, **more: Any) -> Any:
    return client.post(BASE, headers=headers, json={"url": url, **more})


def _endpoint_id(session: Session, public_id: str) -> int:
    return session.execute(
        select(webhook_endpoints.c.id).where(webhook_endpoints.c.public_id == public_id)
    ).scalar_one()


def test_create_list_get_patch_delete_and_the_secret_is_shown_once(
    client, session, webhook_app, receiver
):
    _, headers = _shop(session)
    created = _create(
        client,
        headers,
        receiver.url("/a"),
        events=["purchase.created", "member.created", "purchase.created"],
        description="till sync",
    )
    assert created.status_code == 201, created.json
    body = created.json
    assert body["id"].startswith("whe_")
    assert body["secret"].startswith("whsec_")
    assert body["events"] == ["member.created", "purchase.created"]
    assert body["enabled"] is True and body["disabled_reason"] is None
    assert created.headers["Cache-Control"] == "no-store"

    fetched = client.get(f"{BASE}/{body['id']}", headers=headers)
    assert fetched.status_code == 200
    assert "secret" not in fetched.json
    assert fetched.json == {k: v for k, v in body.items() if k != "secret"}
    listed = client.get(BASE, headers=headers).json
    assert [e["id"] for e in listed["data"]] == [body["id"]]
    assert "secret" not in listed["data"][0]

    off = client.patch(
        f"{BASE}/{body['id']}", headers=headers, json={"enabled": False, "events": None}
    )
    assert off.status_code == 200
    assert (off.json["enabled"], off.json["disabled_reason"], off.json["events"]) == (
        False,
        "merchant",
        None,
    )
    on = client.patch(f"{BASE}/{body['id']}", headers=headers, json={"enabled": True})
    assert (on.json["enabled"], on.json["disabled_reason"], on.json["disabled_at"]) == (
        True,
        None,
        None,
    )

    assert client.delete(f"{BASE}/{body['id']}", headers=headers).status_code == 204
    assert client.get(f"{BASE}/{body['id']}", headers=headers).status_code == 404
    assert client.get(BASE, headers=headers).json["data"] == []
    assert client.delete(f"{BASE}/{body['id']}", headers=headers).status_code == 404


def test_the_same_idempotency_key_makes_one_endpoint(client, session, webhook_app, receiver):
    _, headers = _shop(session)
    keyed = {**headers, "Idempotency-Key": "make-one"}
    first = _create(client, keyed, receiver.url())
    again = _create(client, keyed, receiver.url())
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["id"] == first.json["id"]
    assert len(client.get(BASE, headers=headers).json["data"]) == 1


def test_the_seventeenth_endpoint_is_refused(client, session, webhook_app, receiver):
    _, headers = _shop(session)
    for n in range(16):
        assert _create(client, headers, receiver.url(f"/{n}")).status_code == 201
    refused = _create(client, headers, receiver.url("/17"))
    assert refused.status_code == 409
    assert refused.json["code"] == "too_many_endpoints"
    assert "16" in refused.json["detail"]
    # A deleted endpoint frees its place.
    first = client.get(f"{BASE}?limit=1", headers=headers).json["data"][0]["id"]
    client.delete(f"{BASE}/{first}", headers=headers)
    assert _create(client, headers, receiver.url("/17")).status_code == 201


def _count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(webhook_endpoints)).scalar_one()


def test_an_unsafe_url_is_422_and_nothing_is_written(client, session, app):
    _, headers = _shop(session)
    before = _count(session)
    for url in (
        "https://127.0.0.1/hook",
        "https://10.0.0.8/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/latest",
        "https://localhost/hook",
    ):
        refused = _create(client, headers, url)
        assert refused.status_code == 422, url
        assert refused.json["code"] == "unsafe_webhook_url", url
    plain = _create(client, headers, "http://example.com/hook")
    assert plain.status_code == 422
    assert _count(session) == before


def test_unknown_event_types_and_an_empty_list_are_refused(client, session, webhook_app, receiver):
    _, headers = _shop(session)
    assert _create(client, headers, receiver.url(), events=["nope"]).status_code == 422
    assert _create(client, headers, receiver.url(), events=[]).status_code == 422
    internal = _create(
        client, headers, receiver.url(), events=["merchant.password_reset_requested"]
    )
    assert internal.status_code == 422
    # The coalition's own events reach no merchant, and the test event needs no subscription:
    # neither is offered, so a merchant cannot subscribe to something that never comes.
    for never in ("membership.started", "webhook_endpoint.test"):
        assert _create(client, headers, receiver.url(), events=[never]).status_code == 422
    assert _count(session) == 0


def test_rotation_signs_with_both_secrets_for_a_day(client, session, webhook_app, receiver):
    shop, headers = _shop(session)
    created = _create(client, headers, receiver.url("/r")).json
    old = created["secret"]
    rotated = client.post(f"{BASE}/{created['id']}/rotate-secret", headers=headers)
    assert rotated.status_code == 200
    new = rotated.json["secret"]
    assert new.startswith("whsec_") and new != old
    assert rotated.json["secret_rotates_until"] is not None
    assert "secret" not in client.get(f"{BASE}/{created['id']}", headers=headers).json

    receiver.expect("/r", old, new)
    event(session, "purchase.created", shop, clock.utcnow())
    pump_once()
    [request] = receiver.wait_for(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    receiver.verify(request, old)
    receiver.verify(request, new)


def test_a_failed_delivery_redelivered_is_sent_again_with_the_same_webhook_id(
    client, session, webhook_app, receiver
):
    shop, headers = _shop(session)
    created = _create(client, headers, receiver.url("/re")).json
    receiver.expect("/re", created["secret"])
    hook = _endpoint_id(session, created["id"])
    evt = event(session, "purchase.created", shop, clock.utcnow())
    receiver.script(Reply(500))
    pump_once()
    [first] = receiver.wait_for(1)
    # As if its ten attempts had run out.
    session.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.endpoint_id == hook)
        .values(status="failed", next_attempt_at=None, finished_at=clock.utcnow())
    )

    queued = client.post(f"/api/v1/events/{evt}/redeliver", headers=headers)
    assert queued.status_code == 202, queued.json
    assert [(q["endpoint"], q["event"], q["status"]) for q in queued.json["data"]] == [
        (created["id"], evt, "pending")
    ]
    [row] = deliveries(session, hook)
    assert (row["status"], row["attempts"], row["finished_at"]) == ("pending", 0, None)

    pump_once()
    second = receiver.wait_for(2)[1]
    assert second.headers["webhook-id"] == first.headers["webhook-id"] == evt
    [row] = deliveries(session, hook)
    assert (row["status"], row["attempts"]) == ("succeeded", 1)
    log = client.get(f"{BASE}/{created['id']}/deliveries", headers=headers).json["data"]
    assert [(a["event"]["id"], a["status_code"]) for a in log] == [(evt, 200), (evt, 500)]
    assert all(set(a) >= {"attempted_at", "duration_ms", "error"} for a in log)


def test_redelivery_of_an_unheard_or_foreign_event_and_to_a_named_endpoint(
    client, session, webhook_app, receiver
):
    shop, headers = _shop(session)
    one = _create(client, headers, receiver.url("/1"), events=["member.created"]).json
    two = _create(client, headers, receiver.url("/2")).json
    receiver.expect("/1", one["secret"])
    receiver.expect("/2", two["secret"])
    evt = event(session, "purchase.created", shop, clock.utcnow())
    # Only the endpoint that subscribes to the type gets it.
    queued = client.post(f"/api/v1/events/{evt}/redeliver", headers=headers).json["data"]
    assert [q["endpoint"] for q in queued] == [two["id"]]
    named = client.post(
        f"/api/v1/events/{evt}/redeliver", headers=headers, json={"endpoint": one["id"]}
    )
    assert named.status_code == 422
    internal = event(session, "merchant.password_reset_requested", shop, clock.utcnow())
    assert client.post(f"/api/v1/events/{internal}/redeliver", headers=headers).status_code == 404
    other = event(session, "purchase.created", factories.merchant(session), clock.utcnow())
    assert client.post(f"/api/v1/events/{other}/redeliver", headers=headers).status_code == 404
    pump_once()


def test_a_test_event_reaches_only_its_endpoint(client, session, webhook_app, receiver):
    _, headers = _shop(session)
    one = _create(client, headers, receiver.url("/one")).json
    two = _create(client, headers, receiver.url("/two")).json
    receiver.expect("/one", one["secret"])
    receiver.expect("/two", two["secret"])
    sent = client.post(f"{BASE}/{one['id']}/test", headers=headers)
    assert sent.status_code == 202
    [queued] = sent.json["data"]
    pump_once()
    [request] = receiver.wait_for(1)
    assert request.path == "/one"
    payload = receiver.verify(request)
    assert payload["type"] == "webhook_endpoint.test"
    assert payload["id"] == queued["event"]
    assert payload["data"]["endpoint"]["id"] == one["id"]
    assert deliveries(session, _endpoint_id(session, two["id"])) == []
    assert [a["status_code"] for a in attempts(session, _endpoint_id(session, one["id"]))] == [200]

    client.patch(f"{BASE}/{two['id']}", headers=headers, json={"enabled": False})
    disabled = client.post(f"{BASE}/{two['id']}/test", headers=headers)
    assert (disabled.status_code, disabled.json["code"]) == (409, "endpoint_disabled")


def test_reenabling_an_endpoint_the_engine_disabled_resumes_its_deliveries(
    client, session, webhook_app, receiver
):
    shop, headers = _shop(session)
    created = _create(client, headers, receiver.url("/g")).json
    receiver.expect("/g", created["secret"])
    hook = _endpoint_id(session, created["id"])
    evt = event(session, "purchase.created", shop, clock.utcnow())
    receiver.script(Reply(410))
    pump_once()
    receiver.wait_for(1)
    gone = client.get(f"{BASE}/{created['id']}", headers=headers).json
    assert (gone["enabled"], gone["disabled_reason"]) == (False, "gone")
    [row] = deliveries(session, hook)
    assert row["status"] == "pending"

    back = client.patch(f"{BASE}/{created['id']}", headers=headers, json={"enabled": True})
    assert (back.json["enabled"], back.json["disabled_reason"]) == (True, None)
    session.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.endpoint_id == hook)
        .values(next_attempt_at=clock.utcnow())
    )
    pump_once()
    receiver.wait_for(2)
    # The purchase that waited, and the news that the endpoint had been disabled.
    assert {row["event"]: row["status"] for row in deliveries(session, hook)}[evt] == "succeeded"


def test_deleting_an_endpoint_ends_its_waiting_deliveries(client, session, webhook_app, receiver):
    shop, headers = _shop(session)
    created = _create(client, headers, receiver.url("/d")).json
    hook = _endpoint_id(session, created["id"])
    client.patch(f"{BASE}/{created['id']}", headers=headers, json={"enabled": False})
    session.execute(
        webhook_deliveries.insert().values(
            merchant_id=shop,
            endpoint_id=hook,
            event_id=_any_event(session, shop),
            status="pending",
            attempts=0,
            next_attempt_at=clock.utcnow(),
            created_at=clock.utcnow(),
        )
    )
    client.delete(f"{BASE}/{created['id']}", headers=headers)
    [row] = deliveries(session, hook)
    assert (row["status"], row["next_attempt_at"]) == ("failed", None)


def _any_event(session: Session, shop: int) -> int:
    public_id = event(session, "purchase.created", shop, clock.utcnow())
    return session.execute(
        select(outbox_events.c.id).where(outbox_events.c.public_id == public_id)
    ).scalar_one()
