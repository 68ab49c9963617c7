"""Retries under an injected clock, without sleeping (QUALITY W3): a scripted receiver answering
500, 500, 200 / 410 / always 500 / Retry-After, an endpoint failing for five days, a lease
outliving a killed job, and the rotation window's two signatures. Every request is verified with
the Standard Webhooks library (W1)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import select, update

from coalition.outbox import outbox_events
from tests import factories
from tests.webhooks.engine_helpers import (
    T0,
    attempts,
    deliveries,
    endpoint,
    endpoint_row,
    event,
)
from tests.webhooks.receiver import Reply
from webhooks import delivery, tasks
from webhooks.models import webhook_deliveries, webhook_endpoints
from webhooks.signing import new_secret
from webhooks.tasks import pump_once

SECOND = timedelta(seconds=1)


@pytest.fixture(autouse=True)
def no_jitter(monkeypatch):
    """The middle of the jitter's range: every wait is the schedule's own."""
    monkeypatch.setattr(tasks, "random_source", lambda: 0.5)


def _due(session, endpoint_id: int) -> datetime:
    [row] = deliveries(session, endpoint_id)
    return row["next_attempt_at"]


@pytest.mark.both_backends
def test_500_500_200_arrives_on_the_third_attempt_at_the_scheduled_times(
    session, webhook_app, receiver, moment
):
    shop = factories.merchant(session)
    hook = endpoint(session, shop, receiver)
    evt = event(session, "purchase.created", shop, moment.now)
    receiver.script(Reply(500), Reply(500), Reply(200))
    start = moment.now

    pump_once()
    moment.advance(timedelta(seconds=4))
    pump_once()  # not yet due: nothing sent
    assert len(receiver.requests) == 1
    moment.to(start + timedelta(seconds=5))
    pump_once()
    moment.to(start + timedelta(seconds=5) + timedelta(minutes=5) - SECOND)
    pump_once()
    assert len(receiver.requests) == 2
    moment.advance(SECOND)
    pump_once()

    requests = receiver.wait_for(3)
    assert [r.headers["webhook-id"] for r in requests] == [evt] * 3
    assert [receiver.verify(r)["id"] for r in requests] == [evt] * 3
    log = attempts(session, hook.id)
    assert [a["status_code"] for a in log] == [500, 500, 200]
    assert [a["attempted_at"] for a in log] == [
        start,
        start + timedelta(seconds=5),
        start + timedelta(seconds=5, minutes=5),
    ]
    assert log[0]["error"] == "HTTP 500" and log[2]["error"] is None
    [row] = deliveries(session, hook.id)
    assert (row["status"], row["attempts"], row["finished_at"]) == ("succeeded", 3, moment.now)
    assert endpoint_row(session, hook.id)["failing_since"] is None


def test_jitter_moves_each_wait_by_up_to_ten_percent():
    sent = T0
    low = delivery.next_wait(1, None, sent_at=sent, rng=lambda: 0.0)
    high = delivery.next_wait(1, None, sent_at=sent, rng=lambda: 0.999999)
    assert low == timedelta(seconds=4.5)
    assert timedelta(seconds=5.49) < high < timedelta(seconds=5.5)
    assert delivery.next_wait(9, None, sent_at=sent, rng=lambda: 0.5) == timedelta(hours=24)
    assert delivery.next_wait(10, None, sent_at=sent, rng=lambda: 0.5) is None


def test_retry_after_lengthens_a_wait_never_shortens_it_and_at_most_to_a_day():
    sent = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)
    half = lambda: 0.5  # noqa: E731
    assert delivery.next_wait(1, "120", sent_at=sent, rng=half) == timedelta(seconds=120)
    assert delivery.next_wait(3, "120", sent_at=sent, rng=half) == timedelta(minutes=30)
    in_an_hour = format_datetime(sent + timedelta(hours=1), usegmt=True)
    assert delivery.next_wait(1, in_an_hour, sent_at=sent, rng=half) == timedelta(hours=1)
    assert delivery.next_wait(1, "999999", sent_at=sent, rng=half) == timedelta(hours=24)
    assert delivery.next_wait(1, "soon", sent_at=sent, rng=half) == timedelta(seconds=5)


def test_a_retry_after_answer_delays_the_next_attempt(session, webhook_app, receiver, moment):
    shop = factories.merchant(session)
    hook = endpoint(session, shop, receiver)
    event(session, "purchase.created", shop, moment.now)
    receiver.script(Reply(429, headers={"Retry-After": "3600"}))
    start = moment.now

    pump_once()
    moment.to(start + timedelta(minutes=59))
    pump_once()

    assert len(receiver.requests) == 1
    assert _due(session, hook.id) == start + timedelta(hours=1)
    moment.to(start + timedelta(hours=1))
    pump_once()
    receiver.wait_for(2)
    assert [a["status_code"] for a in attempts(session, hook.id)] == [429, 200]


@pytest.mark.both_backends
def test_410_disables_the_endpoint_and_nothing_more_is_sent(session, webhook_app, receiver, moment):
    shop = factories.merchant(session)
    hook = endpoint(session, shop, receiver)
    for _ in range(3):
        event(session, "purchase.created", shop, moment.now)
    receiver.script(Reply(410))

    pump_once()
    for _ in range(4):
        moment.advance(timedelta(days=1))
        pump_once()
    event(session, "purchase.created", shop, moment.now)
    pump_once()

    assert len(receiver.requests) == 1
    row = endpoint_row(session, hook.id)
    assert (row["enabled"], row["disabled_reason"]) == (False, "gone")
    # Its deliveries wait, not attempted, for the endpoint to be turned on again.
    assert [d["status"] for d in deliveries(session, hook.id)] == ["pending"] * 3
    told = session.execute(
        select(outbox_events.c.data).where(outbox_events.c.type == "webhook_endpoint.disabled")
    ).scalar_one()
    assert told == {"endpoint": {"id": hook.public_id, "url": hook.url, "disabled_reason": "gone"}}

    # Turned on again (by its merchant), it resumes where it stopped.
    session.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == hook.id)
        .values(enabled=True, disabled_reason=None, disabled_at=None)
    )
    pump_once()
    receiver.wait_for(4)
    assert [d["status"] for d in deliveries(session, hook.id)] == ["succeeded"] * 3


def test_always_500_fails_after_the_tenth_attempt_about_three_days_on(
    session, webhook_app, receiver, moment
):
    shop = factories.merchant(session)
    hook = endpoint(session, shop, receiver)
    event(session, "purchase.created", shop, moment.now)
    receiver.default = Reply(500)
    start = moment.now

    pump_once()
    for _ in range(20):
        [row] = deliveries(session, hook.id)
        if row["status"] != "pending":
            break
        moment.to(row["next_attempt_at"])
        pump_once()

    assert len(receiver.wait_for(10)) == 10
    [row] = deliveries(session, hook.id)
    assert (row["status"], row["attempts"]) == ("failed", 10)
    assert row["finished_at"] - start == timedelta(hours=75, minutes=35, seconds=5)
    log = attempts(session, hook.id)
    times = [a["attempted_at"] for a in log]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps == list(delivery.SCHEDULE)
    # Failing for 3.1 days is not yet five: the endpoint stays on.
    assert endpoint_row(session, hook.id)["enabled"] is True
    moment.advance(timedelta(days=30))
    pump_once()
    assert len(receiver.requests) == 10


def test_five_days_of_failures_disable_the_endpoint_and_tell_the_merchant(
    session, webhook_app, receivers, receiver, moment
):
    shop = factories.merchant(session)
    dead = endpoint(session, shop, receiver, "/dead")
    alive = endpoint(session, shop, receiver, "/alive")
    receiver.default = lambda request: Reply(500 if request.path == "/dead" else 200)
    start = moment.now

    # An event a day; every attempt at /dead fails, from the first.
    for day in range(5):
        moment.to(start + timedelta(days=day))
        event(session, "purchase.created", shop, moment.now)
        pump_once()
        assert endpoint_row(session, dead.id)["enabled"] is True
    moment.to(start + timedelta(days=5))
    event(session, "purchase.created", shop, moment.now)
    pump_once()

    row = endpoint_row(session, dead.id)
    assert (row["enabled"], row["disabled_reason"], row["failing_since"]) == (
        False,
        "failing",
        start,
    )
    pump_once()
    told = [
        receiver.verify(r)
        for r in receiver.requests
        if r.path == "/alive" and r.json()["type"] == "webhook_endpoint.disabled"
    ]
    assert [t["data"] for t in told] == [
        {"endpoint": {"id": dead.public_id, "url": dead.url, "disabled_reason": "failing"}}
    ]
    assert alive.id != dead.id


def test_a_success_clears_failing_since(session, webhook_app, receiver, moment):
    shop = factories.merchant(session)
    hook = endpoint(session, shop, receiver)
    event(session, "purchase.created", shop, moment.now)
    receiver.script(Reply(503))
    pump_once()
    assert endpoint_row(session, hook.id)["failing_since"] == moment.now

    moment.advance(timedelta(seconds=5))
    pump_once()

    assert endpoint_row(session, hook.id)["failing_since"] is None


def test_a_delivery_leased_by_a_job_that_died_is_sent_when_its_lease_ends(
    session, webhook_app, receiver, moment
):
    shop = factories.merchant(session)
    hook = endpoint(session, shop, receiver)
    event(session, "purchase.created", shop, moment.now)
    tasks.pump_once(handoff=lambda endpoint_id: True)  # fanned out, handed to nobody
    # A job takes the delivery and is killed before it sends anything.
    [leased] = delivery._lease(session, hook.id, moment.now, timeout=2.0, limit=20)
    session.commit()
    lease = delivery.lease_for(2.0)

    moment.advance(lease - SECOND)
    pump_once()
    assert receiver.requests == []
    moment.advance(SECOND)
    pump_once()

    [request] = receiver.wait_for(1)
    receiver.verify(request)
    [row] = deliveries(session, hook.id)
    assert (row["id"], row["status"], row["attempts"]) == (leased.id, "succeeded", 1)


def test_during_a_rotation_both_secrets_sign_and_each_verifies(
    session, webhook_app, receiver, moment
):
    shop = factories.merchant(session)
    hook = endpoint(session, shop, receiver)
    old = hook.secret
    new = new_secret()
    session.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == hook.id)
        .values(
            secret=new,
            previous_secret=old,
            previous_secret_expires_at=moment.now + timedelta(hours=24),
        )
    )
    receiver.expect(hook.path, old, new)
    event(session, "purchase.created", shop, moment.now)
    pump_once()

    [during] = receiver.wait_for(1)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    receiver.verify(during, old)
    receiver.verify(during, new)

    moment.advance(timedelta(hours=24))
    event(session, "purchase.created", shop, moment.now)
    pump_once()
    after = receiver.wait_for(2)[1]
    receiver.verify(after, new)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    receiver.expect(hook.path, new)
    receiver.requests.remove(during)  # verified above with both; the rest with the new one


def test_an_attempt_signs_with_the_secret_current_when_it_is_sent(
    session, webhook_app, receiver, moment
):
    shop = factories.merchant(session)
    hook = endpoint(session, shop, receiver)
    event(session, "purchase.created", shop, moment.now)
    receiver.script(Reply(500))
    pump_once()
    first = receiver.wait_for(1)[0]
    receiver.verify(first, hook.secret)

    rotated = new_secret()
    session.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == hook.id)
        .values(secret=rotated, previous_secret=None, previous_secret_expires_at=None)
    )
    moment.advance(timedelta(seconds=5))
    pump_once()

    second = receiver.wait_for(2)[1]
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    receiver.verify(second, rotated)
    receiver.expect(hook.path, rotated)
    receiver.requests.remove(first)


def test_a_redelivery_starts_the_schedule_over_and_the_log_keeps_every_attempt(
    session, webhook_app, receiver, moment
):
    shop = factories.merchant(session)
    hook = endpoint(session, shop, receiver)
    event(session, "purchase.created", shop, moment.now)
    receiver.default = Reply(500)
    pump_once()
    for _ in range(12):
        [row] = deliveries(session, hook.id)
        if row["status"] == "failed":
            break
        moment.to(row["next_attempt_at"])
        pump_once()
    assert row["status"] == "failed"

    # What `POST /api/v1/events/{id}/redeliver` does to the delivery.
    receiver.default = Reply(200)
    moment.advance(timedelta(days=1))
    session.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == row["id"])
        .values(status="pending", attempts=0, next_attempt_at=moment.now, finished_at=None)
    )
    pump_once()

    [row] = deliveries(session, hook.id)
    assert (row["status"], row["attempts"]) == ("succeeded", 1)
    assert [a["status_code"] for a in attempts(session, hook.id)] == [500] * 10 + [200]
    assert len({r.headers["webhook-id"] for r in receiver.wait_for(11)}) == 1
