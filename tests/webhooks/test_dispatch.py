"""Fan-out and routing (SPEC 3.6): an event reaches the endpoints of its own merchant that exist,
are enabled and want its type; never another merchant's, never an internal event, never an
endpoint made after it; a rerun doubles nothing. Every request is verified by the receiver
(QUALITY W1)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from coalition.outbox import outbox_events
from tests import factories
from tests.webhooks.engine_helpers import T0, deliveries, endpoint, event
from webhooks import dispatch
from webhooks.models import webhook_deliveries, webhook_endpoints
from webhooks.tasks import pump_once

LATER = T0 + timedelta(minutes=1)


def _undispatched(session) -> int:
    return session.execute(
        select(func.count()).where(outbox_events.c.dispatched_at.is_(None))
    ).scalar_one()


@pytest.mark.both_backends
def test_a_merchant_endpoint_hears_its_own_events_and_no_other_merchants(
    session, webhook_app, receiver, moment
):
    bakery, cinema = factories.merchant(session, "Bakery"), factories.merchant(session, "Cinema")
    bakery_hook = endpoint(session, bakery, receiver, "/bakery")
    cinema_hook = endpoint(session, cinema, receiver, "/cinema")
    member = factories.member(session)

    factories.purchase(session, member, bakery, 10, now=LATER)
    factories.purchase(session, member, cinema, 20, now=LATER)
    factories.purchase(session, member, cinema, 30, now=LATER)
    pump_once()

    receiver.wait_for(3)
    bakery_got = [receiver.verify(r) for r in receiver.requests if r.path == "/bakery"]
    cinema_got = [receiver.verify(r) for r in receiver.requests if r.path == "/cinema"]
    assert [e["type"] for e in bakery_got] == ["purchase.created"]
    assert len(cinema_got) == 2
    assert {e["id"] for e in bakery_got}.isdisjoint({e["id"] for e in cinema_got})
    assert [d["status"] for d in deliveries(session, bakery_hook.id)] == ["succeeded"]
    assert [d["status"] for d in deliveries(session, cinema_hook.id)] == ["succeeded"] * 2
    assert _undispatched(session) == 0


def test_the_envelope_is_the_event_with_its_evt_id_in_the_body_and_the_header(
    session, webhook_app, receiver, moment
):
    shop = factories.merchant(session)
    endpoint(session, shop, receiver)
    evt = event(session, "payout.paid", shop, LATER, {"payout": {"id": "po_1", "amount": 1200}})

    pump_once()

    [request] = receiver.wait_for(1)
    assert request.headers["webhook-id"] == evt
    assert receiver.verify(request) == {
        "id": evt,
        "type": "payout.paid",
        "created_at": LATER.isoformat(),
        "data": {"payout": {"id": "po_1", "amount": 1200}},
    }
    assert request.headers["content-type"] == "application/json"


def test_an_endpoint_subscribed_to_some_types_hears_only_those(
    session, webhook_app, receiver, moment
):
    shop = factories.merchant(session)
    endpoint(session, shop, receiver, "/payouts", events=["payout.paid", "payout.failed"])
    endpoint(session, shop, receiver, "/all")
    wanted = event(session, "payout.failed", shop, LATER)
    event(session, "purchase.created", shop, LATER)

    pump_once()

    receiver.wait_for(3)
    assert receiver.events("/payouts") == [wanted]
    assert len(receiver.events("/all")) == 2


def test_internal_and_coalition_events_are_never_sent(session, webhook_app, receiver, moment):
    shop = factories.merchant(session)
    hook = endpoint(session, shop, receiver)
    event(session, "merchant.password_reset_requested", shop, LATER, {"link": "secret"})
    event(session, "membership.started", None, LATER)

    pump_once()

    assert receiver.requests == []
    assert deliveries(session, hook.id) == []
    assert _undispatched(session) == 0


def test_an_event_from_before_an_endpoint_existed_is_not_sent_to_it(
    session, webhook_app, receiver, moment
):
    shop = factories.merchant(session)
    event(session, "purchase.created", shop, T0 - timedelta(seconds=1))
    hook = endpoint(session, shop, receiver, created_at=T0)
    after = event(session, "purchase.created", shop, T0)

    pump_once()

    receiver.wait_for(1)
    assert receiver.events() == [after]
    assert [d["event"] for d in deliveries(session, hook.id)] == [after]


def test_disabled_and_deleted_endpoints_get_no_deliveries(session, webhook_app, receiver, moment):
    shop = factories.merchant(session)
    off = endpoint(session, shop, receiver, "/off")
    gone = endpoint(session, shop, receiver, "/gone")
    session.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == off.id)
        .values(enabled=False, disabled_reason="merchant", disabled_at=T0)
    )
    session.execute(
        update(webhook_endpoints).where(webhook_endpoints.c.id == gone.id).values(deleted_at=T0)
    )
    event(session, "purchase.created", shop, LATER)

    pump_once()

    assert receiver.requests == []
    assert deliveries(session, off.id) == deliveries(session, gone.id) == []


def test_a_test_event_goes_to_the_one_endpoint_it_names(session, webhook_app, receiver, moment):
    shop = factories.merchant(session)
    tried = endpoint(session, shop, receiver, "/tried", events=["payout.paid"])
    endpoint(session, shop, receiver, "/other")
    evt = event(
        session, "webhook_endpoint.test", shop, LATER, {"endpoint": {"id": tried.public_id}}
    )

    pump_once()

    receiver.wait_for(1)
    assert receiver.events() == [evt]
    assert receiver.requests[0].path == "/tried"


def test_fanning_out_again_after_a_crash_doubles_nothing(session, webhook_app, receiver, moment):
    shop = factories.merchant(session)
    first = endpoint(session, shop, receiver, "/first")
    second = endpoint(session, shop, receiver, "/second")
    for _ in range(3):
        event(session, "purchase.created", shop, LATER)
    assert dispatch.fan_out(session, LATER) == 3
    # A crash after the deliveries were written and before the events were marked: the next
    # pump finds the same events again.
    session.execute(update(outbox_events).values(dispatched_at=None))

    assert dispatch.fan_out(session, LATER) == 3
    assert dispatch.fan_out(session, LATER) == 0

    assert len(deliveries(session, first.id)) == len(deliveries(session, second.id)) == 3
    assert session.execute(select(func.count()).select_from(webhook_deliveries)).scalar_one() == 6


@pytest.mark.both_backends
def test_a_night_of_coalition_events_is_marked_in_bulk_without_deliveries(
    session, webhook_app, receiver, moment
):
    shop = factories.merchant(session)
    hook = endpoint(session, shop, receiver)
    rows = [
        {
            "public_id": f"evt_bulk{n:06d}",
            "type": "member.tier_changed",
            "merchant_id": None,
            "member_id": None,
            "data": {"tier": "gold"},
            "created_at": LATER,
        }
        for n in range(2_500)
    ]
    session.execute(outbox_events.insert(), rows)
    mine = event(session, "purchase.created", shop, LATER)

    marked = dispatch.mark_unheard(session, LATER, limit=1_000)
    assert marked == 1_000
    pumped = pump_once()

    assert pumped.unheard == 1_500
    assert pumped.dispatched == 1
    assert _undispatched(session) == 0
    assert [d["event"] for d in deliveries(session, hook.id)] == [mine]
    receiver.wait_for(1)
