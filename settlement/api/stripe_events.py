"""Inbound Stripe events (SPEC 3.6, QUALITY W5): `POST /webhooks/stripe` checks the
`Stripe-Signature` of the raw body (the signature, the body, and a timestamp neither older
than `STRIPE_WEBHOOK_TOLERANCE` nor from the future), stores each event id once and lets
`settlement.payments` apply it. A replayed event answers 200 and changes nothing, so Stripe
stops retrying it."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify, request

from coalition import clock, tenancy
from coalition.errors import CoalitionError
from coalition.extensions import db
from coalition.web.access import public
from settlement import payments
from settlement.gateway import InvalidSignature, verify_event

bp = Blueprint("stripe_webhooks", __name__)


class BadSignature(CoalitionError):
    status, code, title = 400, "invalid_signature", "Invalid webhook signature"


@bp.post("/webhooks/stripe")
@public()
def receive() -> Response:
    try:
        event = verify_event(
            request.get_data(cache=False),
            request.headers.get("Stripe-Signature"),
            current_app.config["STRIPE_WEBHOOK_SECRET"],
            current_app.config["STRIPE_WEBHOOK_TOLERANCE"],
            time.time(),
        )
    except InvalidSignature as exc:
        raise BadSignature(str(exc)) from exc
    # Stripe signed it: the event acts as the system, which may update any merchant's payments.
    session = db.session()
    tenancy.enter(session, tenancy.SYSTEM)
    received = payments.receive_event(session, event, clock.utcnow())
    session.commit()
    return jsonify(received=True, replayed=not received.new)
