"""Stripe tells the platform what became of its payments (SPEC 3.6, QUALITY W5): only events
Stripe signed, recently, over exactly the bytes received, are let in; an event id is acted on
once, however often and however concurrently it arrives; and the events of one payment, in any
order, leave it in the same state."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coalition.database import table
from coalition.extensions import db
from coalition.outbox import OutboxEvent
from settlement import payments, tasks
from settlement.models import PaymentInstruction, StripeEvent
from tests import factories
from tests.factories import statement
from tests.stripe_standin import StripeStandIn, serve, sign, stripe_for

SECRET = "whsec_test_inbound"
NOW = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


@pytest.fixture
def secret(app: Flask) -> Iterator[str]:
    previous = app.config["STRIPE_WEBHOOK_SECRET"]
    app.config["STRIPE_WEBHOOK_SECRET"] = SECRET
    yield SECRET
    app.config["STRIPE_WEBHOOK_SECRET"] = previous


@pytest.fixture
def stripe(app: Flask, session: Session, secret: str) -> Iterator[StripeStandIn]:
    with stripe_for(app) as stand_in:
        yield stand_in


def _post(client: FlaskClient, event: dict[str, Any], **signing: Any) -> Any:
    body, headers = StripeStandIn.signed(event, signing.get("secret", SECRET), signing.get("at"))
    return client.post("/webhooks/stripe", data=body, headers=headers)


def _paid(session: Session, closing: str) -> PaymentInstruction:
    """A merchant's October statement, submitted to Stripe by the job."""
    stated = statement(session, factories.merchant(session), closing)
    instruction = payments.instruct(session, stated, NOW)
    assert instruction is not None
    session.commit()
    tasks.submit_payments(NOW.isoformat())
    session.expire_all()
    return instruction


def _status(session: Session, instruction: PaymentInstruction) -> tuple[str, str | None]:
    session.expire_all()
    session.refresh(instruction)
    return instruction.status, instruction.stripe_id


def _stored(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(table(StripeEvent))) or 0


def _payout_events(session: Session, merchant_id: int) -> list[str]:
    events = table(OutboxEvent)
    return list(
        session.scalars(
            select(events.c.type)
            .where(events.c.merchant_id == merchant_id, events.c.type.like("payout.%"))
            .order_by(events.c.id)
        )
    )


# -- who may talk ------------------------------------------------------------------------------


def test_a_signed_event_is_stored_once_and_its_replay_changes_nothing(
    client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    instruction = _paid(session, "-5.00")
    [transfer] = stripe.all("transfer")
    reversal = stripe.reverse_transfer(transfer["id"])

    first = _post(client, reversal)
    again = _post(client, reversal)

    assert (first.status_code, first.json) == (200, {"received": True, "replayed": False})
    assert (again.status_code, again.json) == (200, {"received": True, "replayed": True})
    assert _status(session, instruction) == ("failed", transfer["id"])
    assert _payout_events(session, instruction.merchant_id) == ["payout.paid", "payout.failed"]
    stored = session.get(StripeEvent, reversal["id"])
    assert stored is not None and stored.type == "transfer.reversed"
    assert stored.processed_at is not None and stored.payload["id"] == reversal["id"]


def _tampered(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body, headers = StripeStandIn.signed(event, SECRET)
    changed = body.replace(b'"amount": 500', b'"amount": 50000')
    assert changed != body
    return changed, headers


REFUSED = {
    "signed with another secret": lambda e: StripeStandIn.signed(e, "whsec_someone_else"),
    "body changed after signing": _tampered,
    "signed five minutes ago": lambda e: StripeStandIn.signed(e, SECRET, int(time.time()) - 300),
    "signed a minute from now": lambda e: StripeStandIn.signed(e, SECRET, int(time.time()) + 60),
    "no signature": lambda e: (json.dumps(e).encode(), {}),
    "not Stripe's scheme": lambda e: (
        json.dumps(e).encode(),
        {"Stripe-Signature": sign(json.dumps(e), SECRET, int(time.time())).replace("v1=", "v0=")},
    ),
}


@pytest.mark.parametrize("how", sorted(REFUSED))
def test_an_event_stripe_did_not_sign_just_now_over_these_bytes_is_refused(
    client: FlaskClient, session: Session, stripe: StripeStandIn, how: str
) -> None:
    instruction = _paid(session, "-5.00")
    reversal = stripe.reverse_transfer(stripe.all("transfer")[0]["id"])
    body, headers = REFUSED[how](reversal)

    response = client.post("/webhooks/stripe", data=body, headers=headers)

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "invalid_signature"
    assert _stored(session) == 0
    assert _status(session, instruction)[0] == "succeeded"


def test_without_a_webhook_secret_every_event_is_refused(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    assert app.config["STRIPE_WEBHOOK_SECRET"] is None
    event = {"id": "evt_1", "object": "event", "type": "payout.paid", "data": {"object": {}}}
    response = _post(client, event)
    assert (response.status_code, response.get_json()["code"]) == (400, "invalid_signature")


# -- once --------------------------------------------------------------------------------------


def test_one_event_delivered_many_times_at_once_has_one_effect(
    committed: Flask, secret: str
) -> None:
    app = committed
    with app.app_context(), stripe_for(app) as stand_in:
        session = db.session()
        instruction = _paid(session, "-5.00")
        merchant_id, instruction_id = instruction.merchant_id, instruction.id
        reversal = stand_in.reverse_transfer(stand_in.all("transfer")[0]["id"])

        with serve(app) as url:
            statuses = stand_in.deliver(f"{url}/webhooks/stripe", reversal, secret, copies=8)

        db.session.remove()
        session = db.session()
        assert statuses == [200] * 8
        assert _payout_events(session, merchant_id) == ["payout.paid", "payout.failed"]
        assert session.get_one(PaymentInstruction, instruction_id).status == "failed"
        assert _stored(session) == 1
        db.session.remove()


# -- in any order ------------------------------------------------------------------------------


def test_an_invoices_events_in_any_order_end_with_it_paid(
    client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    ends = set()
    for order in itertools.permutations(range(3)):
        instruction = _paid(session, "0.20")
        invoice_id = instruction.stripe_id
        assert invoice_id is not None
        # What happened at Stripe: sent, a first payment failed, then the merchant paid.
        happened = [
            stripe.events_about(invoice_id)[-1],  # invoice.sent
            stripe.fail_invoice_payment(invoice_id),
            stripe.pay_invoice(invoice_id),
        ]
        for index in [*order, order[0]]:  # in this order, the first one twice
            assert _post(client, happened[index]).status_code == 200
        ends.add(_status(session, instruction))
        assert instruction.finished_at is not None
    assert {status for status, _ in ends} == {"succeeded"}


def test_an_unpaid_invoices_events_in_any_order_end_with_it_failed(
    client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    ends = set()
    for order in itertools.permutations(range(2)):
        instruction = _paid(session, "0.20")
        invoice_id = instruction.stripe_id
        assert invoice_id is not None
        happened = [stripe.fail_invoice_payment(invoice_id), stripe.mark_uncollectible(invoice_id)]
        for index in order:
            assert _post(client, happened[index]).status_code == 200
        session.refresh(instruction)
        ends.add((instruction.status, instruction.last_error))
    assert {status for status, _ in ends} == {"failed"}


@pytest.mark.parametrize("job_first", [True, False])
def test_a_transfers_events_in_any_order_end_with_it_reversed(
    client: FlaskClient, session: Session, stripe: StripeStandIn, job_first: bool
) -> None:
    """The job's own answer may come before Stripe's events or, after a time-out, after them."""
    for order in itertools.permutations(range(2)):
        if not job_first:
            stripe.hold_next("POST", "/v1/transfers")
        instruction = _paid(session, "-5.00")
        transfer_id = stripe.all("transfer")[-1]["id"]
        happened = [stripe.events_about(transfer_id)[0], stripe.reverse_transfer(transfer_id)]
        assert happened[0]["type"] == "transfer.created"
        for index in order:
            assert _post(client, happened[index]).status_code == 200
        tasks.submit_payments(NOW.isoformat())  # a rerun changes nothing now

        assert _status(session, instruction) == ("failed", transfer_id)
        assert _payout_events(session, instruction.merchant_id)[-1] == "payout.failed"
        assert len(stripe.events_about(transfer_id)) == 2


# -- what is only news -------------------------------------------------------------------------


def test_payouts_and_account_updates_on_connected_accounts_are_kept_and_change_nothing(
    client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    instruction = _paid(session, "-5.00")
    account = stripe.all("account")[0]
    news = [
        stripe.payout(account["id"], "paid"),
        stripe.payout(account["id"], "failed"),
        stripe.event("account.updated", {**account, "payouts_enabled": True}, account["id"]),
        stripe.event("customer.created", {"id": "cus_x", "object": "customer"}),
        stripe.event("transfer.created", {"id": "tr_other", "object": "transfer", "amount": 1}),
    ]
    for event in news:
        assert _post(client, event).status_code == 200

    assert _stored(session) == len(news)
    assert _status(session, instruction)[0] == "succeeded"
    assert _payout_events(session, instruction.merchant_id) == ["payout.paid"]
