"""The paid premium membership, Stripe's half (SPEC 2, 3.7): a member's purchase becomes a
Stripe Checkout Session (`buy`), and Stripe's events about it (`on_event`, from
`POST /webhooks/stripe` through `settlement.payments.receive_event`) confirm or cancel it in
`coalition.members.premium`, which keeps the memberships.

No transaction is open across a Stripe call (decision 82): the pending membership is written
and committed first, then the session is made under an idempotency key derived from the
member, the period and the attempt (`premium:<member>:<period>:<attempt>`), so a retried click,
a second tab or a crash after Stripe answered never makes a second session for the period, and
the session's id is recorded after. A payment is only ever confirmed by a signed event."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from coalition import economics
from coalition.members import premium
from coalition.members.services import FoundMember
from settlement import business_days
from settlement.gateway import PaymentGateway

log = logging.getLogger(__name__)

# Stripe's events about a Checkout Session of ours, and about a refunded charge.
CHECKOUT_PAID = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
CHECKOUT_GIVEN_UP = ("checkout.session.expired", "checkout.session.async_payment_failed")
EVENTS = (*CHECKOUT_PAID, *CHECKOUT_GIVEN_UP, "charge.refunded")


@dataclass(frozen=True)
class Checkout:
    """Where to send the member to pay (`url`), or None when the payment is done already and
    only its confirmation is awaited."""

    membership: str
    url: str | None


def idempotency_key(member_public_id: str, attempt: premium.Attempt) -> str:
    return f"premium:{member_public_id}:{attempt.period}:{attempt.public_id}"


def buy(
    session: Session,
    gw: PaymentGateway,
    member: FoundMember,
    email: str | None,
    now: datetime,
    success_url: str,
    cancel_url: str,
) -> Checkout:
    """Start (or go on with) the member's purchase of its next premium year at today's terms:
    the Checkout Session to pay at. Raises AlreadyPremium when the member may not buy now,
    and the gateway's errors when Stripe cannot be reached (the pending attempt stays, and a
    retry uses the same key). Commits."""
    terms = economics.coalition_terms(session, business_days.today(now))
    attempt = premium.begin(session, member.id, now, terms.premium, terms.currency)
    session.commit()
    if attempt.checkout_session_id is not None:
        found = gw.retrieve_checkout_session(attempt.checkout_session_id)
        if found.status == "open":
            return Checkout(attempt.public_id, found.url)
        if found.status == "complete":
            return Checkout(attempt.public_id, None)  # paid: its event is on the way
        # Expired without its event yet: this attempt is over; start the period again.
        premium.cancel(session, attempt.public_id, now)
        session.commit()
        attempt = premium.begin(session, member.id, now, terms.premium, terms.currency)
        session.commit()
    made = gw.create_checkout_session(
        idempotency_key(member.public_id, attempt),
        attempt.price_minor,
        attempt.currency,
        f"Coalition premium membership: one year, points x{attempt.multiplier}",
        success_url,
        cancel_url,
        {"membership": attempt.public_id, "member": member.public_id},
        email,
    )
    premium.attach_checkout(session, attempt.id, made.id)
    session.commit()
    return Checkout(attempt.public_id, made.url)


def on_event(session: Session, kind: str, obj: dict[str, Any], now: datetime) -> str | None:
    """Apply a verified Stripe event about a membership, in the caller's transaction; the
    membership's status after, or None when the event is about nothing of ours."""
    if kind == "charge.refunded":
        intent = obj.get("payment_intent")
        if not intent or int(obj.get("amount_refunded") or 0) < int(obj.get("amount") or 0):
            return None  # a partial refund leaves the year as it is
        return premium.refund(session, str(intent), now)
    public_id = (obj.get("metadata") or {}).get("membership")
    if not public_id:
        return None
    if kind in CHECKOUT_GIVEN_UP:
        return premium.cancel(session, str(public_id), now)
    if obj.get("payment_status") != "paid":
        return None  # completed, but a delayed method: async_payment_succeeded will say
    intent = obj.get("payment_intent")
    return premium.confirm(
        session,
        str(public_id),
        amount_minor=int(obj.get("amount_total") or 0),
        currency=str(obj.get("currency") or ""),
        checkout_session_id=str(obj.get("id") or "") or None,
        payment_intent_id=intent if isinstance(intent, str) else None,
        now=now,
    )
