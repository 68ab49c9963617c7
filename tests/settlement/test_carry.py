"""A payout that fails is paid in the end (SPEC 2 statements, SPEC 3.7): whatever month it
fails in, its amount is carried into the merchant's next statement made after the failure, once,
and never again. Stripe's failures arrive as they do in production: a transfer reversed days
later through `POST /webhooks/stripe`, or a transfer Stripe refuses when the job submits it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from settlement import payments, runs, statements, tasks
from settlement.models import PaymentInstruction, Statement
from tests import factories as f
from tests.stripe_standin import StripeStandIn, stripe_for

SECRET = "whsec_test_carry"


@pytest.fixture
def stripe(app: Flask, session: Session) -> Iterator[StripeStandIn]:
    previous = app.config["STRIPE_WEBHOOK_SECRET"]
    app.config["STRIPE_WEBHOOK_SECRET"] = SECRET
    with stripe_for(app) as stand_in:
        yield stand_in
    app.config["STRIPE_WEBHOOK_SECRET"] = previous


def first_of(month: str) -> datetime:
    """03:00 UTC on the 1st of the month after `month`: when its statements are made."""
    _, last = statements.parse_month(month)
    return datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=3)


def state(session: Session, month: str) -> dict[int, Statement]:
    """Settle every day of `month` and state it, as the nightly jobs do on the 1st, then submit
    its payments; the merchants' statements of that month, by merchant."""
    now = first_of(month)
    first, last = statements.parse_month(month)
    for day in runs.unsettled_days(session, first, last):
        runs.settle(session, day, now)
    statements.issue_month(session, month, now)
    session.commit()
    tasks.submit_payments(now.isoformat())
    session.expire_all()
    rows = session.scalars(select(Statement).where(Statement.month == month)).all()
    return {row.merchant_id: row for row in rows}


def instruction(session: Session, statement: Statement) -> PaymentInstruction:
    session.expire_all()
    return session.scalars(
        select(PaymentInstruction).where(PaymentInstruction.statement_id == statement.id)
    ).one()


def reverse(client: FlaskClient, stripe: StripeStandIn, paid: PaymentInstruction) -> None:
    """Stripe reverses the transfer it made (the connected account was closed, say) and tells
    the platform with a signed event."""
    assert paid.stripe_id is not None
    event = stripe.reverse_transfer(paid.stripe_id)
    body, headers = StripeStandIn.signed(event, SECRET)
    assert client.post("/webhooks/stripe", data=body, headers=headers).status_code == 200


def october(session: Session) -> tuple[int, int]:
    """Café Aurora takes 200 points a member earned at the bakery: the coalition owes it 2.00."""
    aurora, bakery = f.merchant(session, "Café Aurora"), f.merchant(session, "Bakery")
    member = f.member(session)
    f.purchase(session, member, bakery, 300, now=datetime(2026, 10, 5, 9, tzinfo=UTC))
    f.redeem(session, member, aurora, 200, now=datetime(2026, 10, 6, 9, tzinfo=UTC))
    return aurora, bakery


def carried(session: Session, statement: Statement) -> list[str]:
    return [row["month"] for row in _view(session, statement)["carried"]]


def _view(session: Session, statement: Statement) -> dict[str, Any]:
    return statements.statement_view(session, statement.public_id)


@pytest.mark.both_backends
def test_a_payout_failing_after_the_next_month_was_stated_is_carried_into_the_one_after(
    client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    aurora, _ = october(session)
    stated_october = state(session, "2026-10")[aurora]
    paid = instruction(session, stated_october)
    assert (paid.kind, paid.amount_minor, paid.status) == ("transfer", 200, "succeeded")
    # November: nothing happens at Café Aurora; its statements are made on 1 December.
    assert aurora not in state(session, "2026-11")

    reverse(client, stripe, paid)  # 10 December: the October transfer comes back
    assert instruction(session, stated_october).status == "failed"
    december = state(session, "2026-12")

    assert aurora in december, "the failed October payout was never carried"
    carrying = december[aurora]
    assert (carrying.opening, carrying.net, carrying.closing) == ("-2.00", "0.00", "-2.00")
    assert carried(session, carrying) == ["2026-10"]
    repaid = instruction(session, carrying)
    assert (repaid.kind, repaid.amount_minor, repaid.status) == ("transfer", 200, "succeeded")
    # Carried once: neither stating December again nor January carries it a second time.
    assert state(session, "2026-12")[aurora].id == carrying.id
    assert aurora not in state(session, "2027-01")
    # October's transfer, then the one that repays it.
    assert [t["amount"] for t in stripe.all("transfer")] == [200, 200]


def test_a_carried_amount_whose_repayment_fails_too_is_carried_once_more_not_twice(
    client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    aurora, _ = october(session)
    stated_october = state(session, "2026-10")[aurora]
    reverse(client, stripe, instruction(session, stated_october))  # fails in November
    # 1 December: November carries October's 2.00; Stripe refuses that transfer.
    stripe.refuse_next("POST", "/v1/transfers", code="account_closed")
    november = state(session, "2026-11")[aurora]
    assert (november.opening, november.closing) == ("-2.00", "-2.00")
    assert instruction(session, november).status == "failed"

    december = state(session, "2026-12")[aurora]

    # November's closing already holds October's 2.00: 2.00 is owed, not 4.00.
    assert (december.opening, december.closing) == ("-2.00", "-2.00")
    assert carried(session, december) == ["2026-11"]
    assert carried(session, november) == ["2026-10"]
    assert aurora not in state(session, "2027-01")


def test_two_failed_payouts_are_both_carried_into_the_next_statement(
    client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    aurora, bakery = october(session)
    stated_october = state(session, "2026-10")[aurora]
    member = f.member(session)
    f.purchase(session, member, bakery, 100, now=datetime(2026, 11, 5, 9, tzinfo=UTC))
    f.redeem(session, member, aurora, 50, now=datetime(2026, 11, 6, 9, tzinfo=UTC))
    stated_november = state(session, "2026-11")[aurora]
    assert stated_november.opening == "0.00"  # October had not failed on 1 December
    # Both transfers come back in December.
    reverse(client, stripe, instruction(session, stated_october))
    reverse(client, stripe, instruction(session, stated_november))

    december = state(session, "2026-12")[aurora]

    assert (december.opening, december.closing) == ("-2.50", "-2.50")
    assert carried(session, december) == ["2026-10", "2026-11"]
    assert instruction(session, december).amount_minor == 250


def test_a_failed_collection_is_not_carried(session: Session, stripe: StripeStandIn) -> None:
    """The merchant's invoice stays open at Stripe and may still be paid: carrying it could make
    the merchant pay twice (decision 69)."""
    _, bakery = october(session)
    stated = state(session, "2026-10")[bakery]
    owed = instruction(session, stated)
    assert owed.kind == "invoice"
    payments.record_outcome(
        session, owed.id, "failed", None, "invoice.payment_failed", first_of("2026-11")
    )

    assert bakery not in state(session, "2026-11")
    assert bakery not in state(session, "2026-12")
