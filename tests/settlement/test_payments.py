"""A month's statements turn into money at Stripe (SPEC 3.7, QUALITY B1): the operator pays a
merchant by Transfer, a merchant pays the operator by Invoice, and whatever fails on the way (a
500, a time-out after Stripe committed, the worker dying before or after its call) a rerun
ends with exactly one instruction and one Stripe payment per statement. Stripe is a stand-in
served over real HTTP (tests/stripe_standin.py) that checks idempotency keys and counts what
was done under each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition.database import table
from coalition.outbox import OutboxEvent
from merchants.models import Merchant
from settlement import payments, statements, tasks
from settlement.gateway import EXTENSION
from settlement.models import PaymentInstruction, Statement
from settlement.money import InvalidClosing
from tests import factories
from tests.factories import statement
from tests.stripe_standin import StripeStandIn, stripe_for

NOW = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


@pytest.fixture
def stripe(app: Flask, session: Session) -> Iterator[StripeStandIn]:
    with stripe_for(app) as stand_in:
        yield stand_in


def _instruction(session: Session, statement_id: int) -> PaymentInstruction:
    session.expire_all()
    return session.scalars(
        select(PaymentInstruction).where(PaymentInstruction.statement_id == statement_id)
    ).one()


def _merchant(session: Session, merchant_id: int) -> Any:
    return session.execute(select(table(Merchant)).where(table(Merchant).c.id == merchant_id)).one()


def _payout_events(session: Session, merchant_id: int) -> list[tuple[str, dict[str, Any]]]:
    events = table(OutboxEvent)
    rows = session.execute(
        select(events.c.type, events.c.data)
        .where(events.c.merchant_id == merchant_id, events.c.type.like("payout.%"))
        .order_by(events.c.id)
    ).all()
    return [(row.type, row.data) for row in rows]


def _body(response: Any) -> dict[str, Any]:
    body = response.get_json()
    assert isinstance(body, dict), response.data
    return body


def _posts(stripe: StripeStandIn, path: str) -> int:
    return sum(1 for method, called, _ in stripe.calls if method == "POST" and called == path)


def _arrange(session: Session, closing: str, name: str = "Shop") -> tuple[int, int]:
    """A merchant and its October statement with an instruction; committed, as the statements
    job leaves them."""
    shop = factories.merchant(session, name)
    stated = statement(session, shop, closing)
    payments.instruct(session, stated, NOW)
    session.commit()
    return shop, stated.id


# -- instructions ------------------------------------------------------------------------------


def test_a_statement_gets_one_instruction_by_the_sign_of_its_closing(session: Session) -> None:
    shop = factories.merchant(session)
    owed_to_shop = statement(session, shop, "-0.78", month="2026-09")
    owed_by_shop = statement(session, shop, "0.20", month="2026-10")
    even = statement(session, shop, "0.00", month="2026-11")

    transfer = payments.instruct(session, owed_to_shop, NOW)
    invoice = payments.instruct(session, owed_by_shop, NOW)

    assert transfer is not None and invoice is not None
    assert (transfer.kind, transfer.amount_minor, transfer.currency) == ("transfer", 78, "EUR")
    assert (invoice.kind, invoice.amount_minor, invoice.status) == ("invoice", 20, "created")
    assert transfer.public_id.startswith("pay_")
    assert payments.instruct(session, even, NOW) is None
    # Asking again (a rerun of the statements job) finds the same instruction.
    again = payments.instruct(session, owed_to_shop, NOW)
    assert again is not None and again.public_id == transfer.public_id
    count = session.scalars(
        select(PaymentInstruction.id).where(PaymentInstruction.merchant_id == shop)
    ).all()
    assert len(count) == 2


@pytest.mark.parametrize(("closing", "currency"), [("1.234", "EUR"), ("1.5", "JPY"), ("1", "XYZ")])
def test_a_closing_no_payment_can_carry_is_refused(
    session: Session, closing: str, currency: str
) -> None:
    shop = factories.merchant(session)
    with pytest.raises(InvalidClosing):
        payments.instruct(session, statement(session, shop, closing, currency=currency), NOW)


# -- transfers ---------------------------------------------------------------------------------


def test_a_payable_statement_becomes_exactly_one_transfer_to_the_merchants_account(
    session: Session, stripe: StripeStandIn
) -> None:
    shop, stated = _arrange(session, "-0.78")

    outcome = tasks.submit_payments(NOW.isoformat())

    assert outcome == {"succeeded": 1}
    instruction = _instruction(session, stated)
    account = _merchant(session, shop).stripe_account_id
    [transfer] = stripe.all("transfer")
    assert (instruction.status, instruction.stripe_id) == ("succeeded", transfer["id"])
    assert (transfer["amount"], transfer["currency"], transfer["destination"]) == (
        78,
        "eur",
        account,
    )
    assert transfer["transfer_group"] == instruction.public_id
    assert transfer["metadata"]["instruction"] == instruction.public_id
    assert stripe.effects[instruction.public_id] == 1
    assert (instruction.attempts, instruction.finished_at) == (1, NOW)
    # The merchant had no connected account: one was made first, under a key of its own.
    assert len(stripe.all("account")) == 1
    assert stripe.effects[f"{_merchant(session, shop).public_id}:account"] == 1
    [(kind, data)] = _payout_events(session, shop)
    assert kind == "payout.paid"
    statement_id = session.get_one(Statement, stated).public_id
    assert data["payout"] == {
        "id": instruction.public_id,
        "kind": "transfer",
        "statement": statement_id,
        "month": "2026-10",
        "amount": {"amount": 78, "currency": "EUR"},
        "status": "succeeded",
        "transfer": transfer["id"],
    }
    # The payment as the merchant's `GET /api/v1/statements/{id}` shows it, no less.
    shown = statements.statement_view(session, statement_id)["payment"]
    assert {key: data["payout"][key] for key in shown} == shown

    calls_before = len(stripe.calls)
    assert tasks.submit_payments(NOW.isoformat()) == {}
    assert len(stripe.calls) == calls_before  # nothing left to do, nothing asked


def test_a_500_leaves_the_transfer_for_the_next_run_which_pays_once(
    session: Session, stripe: StripeStandIn
) -> None:
    _, stated = _arrange(session, "-12.50")
    stripe.fail_next("POST", "/v1/transfers")

    assert tasks.submit_payments(NOW.isoformat()) == {"waiting": 1}
    waiting = _instruction(session, stated)
    assert (waiting.status, waiting.stripe_id) == ("submitted", None)
    assert "unknown error" in (waiting.last_error or "").lower()

    assert tasks.submit_payments(NOW.isoformat()) == {"succeeded": 1}
    paid = _instruction(session, stated)
    assert (paid.status, paid.attempts, paid.last_error) == ("succeeded", 2, None)
    assert len(stripe.all("transfer")) == 1
    assert stripe.effects[paid.public_id] == 1


def test_a_timeout_after_stripe_committed_is_resolved_by_looking_the_transfer_up(
    session: Session, stripe: StripeStandIn
) -> None:
    _, stated = _arrange(session, "-3.00")
    stripe.hold_next("POST", "/v1/transfers")  # done at Stripe, but the answer never comes

    assert tasks.submit_payments(NOW.isoformat()) == {"waiting": 1}
    unknown = _instruction(session, stated)
    assert (unknown.status, unknown.stripe_id) == ("submitted", None)
    assert len(stripe.all("transfer")) == 1

    assert tasks.submit_payments(NOW.isoformat()) == {"succeeded": 1}
    paid = _instruction(session, stated)
    [transfer] = stripe.all("transfer")
    assert paid.stripe_id == transfer["id"]
    assert stripe.effects[paid.public_id] == 1
    assert _posts(stripe, "/v1/transfers") == 1  # the rerun looked, and did not ask again


class Crash(Exception):
    """The worker dies here (kill -9 is simulated by an exception nothing catches)."""


class CrashingGateway:
    """The real gateway, except that `method` dies before or after doing its work."""

    def __init__(self, inner: Any, method: str, when: str) -> None:
        self.inner, self.method, self.when = inner, method, when

    def __getattr__(self, name: str) -> Callable[..., Any]:
        real: Callable[..., Any] = getattr(self.inner, name)
        if name != self.method:
            return real

        def dying(*args: Any, **kwargs: Any) -> Any:
            if self.when == "before":
                raise Crash(f"before {name}")
            real(*args, **kwargs)
            raise Crash(f"after {name}")

        return dying


@pytest.mark.parametrize(
    ("closing", "method", "path"),
    [
        ("-4.20", "create_transfer", "/v1/transfers"),
        ("4.20", "send_invoice", "/v1/invoices"),
    ],
)
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_before_or_after_the_stripe_call_then_a_rerun_pays_exactly_once(
    app: Flask,
    session: Session,
    stripe: StripeStandIn,
    closing: str,
    method: str,
    path: str,
    when: str,
) -> None:
    shop, stated = _arrange(session, closing)
    real = app.extensions[EXTENSION]
    app.extensions[EXTENSION] = CrashingGateway(real, method, when)
    try:
        with pytest.raises(Crash):
            tasks.submit_payments(NOW.isoformat())
    finally:
        app.extensions[EXTENSION] = real
    session.rollback()
    crashed = _instruction(session, stated)
    assert (crashed.status, crashed.stripe_id) == ("submitted", None)  # marked before the call

    tasks.submit_payments(NOW.isoformat())
    tasks.submit_payments(NOW.isoformat())

    done = _instruction(session, stated)
    made = stripe.all("transfer" if done.kind == "transfer" else "invoice")
    assert len(made) == 1
    assert done.stripe_id == made[0]["id"]
    assert _posts(stripe, path) == 1  # B1: one Stripe call per merchant and period
    if done.kind == "transfer":
        assert done.status == "succeeded"
        assert stripe.effects[done.public_id] == 1
    else:
        assert done.status == "submitted"  # sent; its payment will tell
        assert stripe.effects[f"{done.public_id}:invoice"] == 1
        assert stripe.effects[f"{done.public_id}:item"] == 1
        assert stripe.sent[made[0]["id"]] == 1
    assert session.scalars(
        select(PaymentInstruction.id).where(PaymentInstruction.merchant_id == shop)
    ).all() == [done.id]


def test_a_crash_after_stripe_made_the_account_reuses_it_on_the_rerun(
    app: Flask, session: Session, stripe: StripeStandIn
) -> None:
    shop, stated = _arrange(session, "-1.00")
    real = app.extensions[EXTENSION]
    app.extensions[EXTENSION] = CrashingGateway(real, "create_account", "after")
    try:
        with pytest.raises(Crash):
            tasks.submit_payments(NOW.isoformat())
    finally:
        app.extensions[EXTENSION] = real
    session.rollback()
    assert _instruction(session, stated).status == "created"  # nothing asked of it yet

    assert tasks.submit_payments(NOW.isoformat()) == {"succeeded": 1}
    [account] = stripe.all("account")
    assert _merchant(session, shop).stripe_account_id == account["id"]
    assert stripe.all("transfer")[0]["destination"] == account["id"]


def test_a_refused_transfer_ends_failed_and_tells_the_merchant(
    session: Session, stripe: StripeStandIn
) -> None:
    shop, stated = _arrange(session, "-9.99")
    stripe.refuse_next("POST", "/v1/transfers", code="amount_too_large")

    assert tasks.submit_payments(NOW.isoformat()) == {"failed": 1}
    failed = _instruction(session, stated)
    assert failed.status == "failed"
    assert failed.finished_at == NOW
    assert "refused" in (failed.last_error or "")
    assert stripe.all("transfer") == []
    assert [kind for kind, _ in _payout_events(session, shop)] == ["payout.failed"]
    assert tasks.submit_payments(NOW.isoformat()) == {}  # failed is an end


def test_a_merchant_still_onboarding_waits_instead_of_failing(
    session: Session, stripe: StripeStandIn
) -> None:
    _, stated = _arrange(session, "-2.00")
    stripe.refuse_next("POST", "/v1/transfers", code="capability_not_active")

    assert tasks.submit_payments(NOW.isoformat()) == {"waiting": 1}
    assert _instruction(session, stated).status == "submitted"
    assert tasks.submit_payments(NOW.isoformat()) == {"succeeded": 1}
    assert len(stripe.all("transfer")) == 1


# -- invoices ----------------------------------------------------------------------------------


def test_a_receivable_statement_becomes_one_sent_invoice(
    session: Session, stripe: StripeStandIn
) -> None:
    shop, stated = _arrange(session, "0.20")

    assert tasks.submit_payments(NOW.isoformat()) == {"submitted": 1}

    instruction = _instruction(session, stated)
    customer = _merchant(session, shop).stripe_customer_id
    [invoice] = stripe.all("invoice")
    assert (instruction.status, instruction.stripe_id) == ("submitted", invoice["id"])
    assert invoice["customer"] == customer
    assert (invoice["status"], invoice["total"], invoice["currency"]) == ("open", 20, "eur")
    assert invoice["collection_method"] == "send_invoice"
    assert invoice["metadata"]["instruction"] == instruction.public_id
    assert stripe.sent[invoice["id"]] == 1
    for step in ("invoice", "item", "finalize", "send"):
        assert stripe.effects[f"{instruction.public_id}:{step}"] == 1
    assert len(stripe.all("customer")) == 1
    # Sent: the job leaves it to Stripe's events, and asks nothing more.
    calls_before = len(stripe.calls)
    assert tasks.submit_payments(NOW.isoformat()) == {}
    assert len(stripe.calls) == calls_before


def test_a_500_halfway_through_an_invoice_is_finished_on_the_rerun_without_a_second_one(
    session: Session, stripe: StripeStandIn
) -> None:
    _, stated = _arrange(session, "15.00")
    stripe.fail_next("POST", "/v1/invoices/")  # the finalisation, after invoice and item

    assert tasks.submit_payments(NOW.isoformat()) == {"waiting": 1}
    [draft] = stripe.all("invoice")
    assert (draft["status"], draft["total"]) == ("draft", 1500)

    assert tasks.submit_payments(NOW.isoformat()) == {"submitted": 1}
    [invoice] = stripe.all("invoice")
    assert invoice["status"] == "open"
    assert len(stripe.all("invoiceitem")) == 1
    assert _instruction(session, stated).stripe_id == invoice["id"]


# -- the operator's routes ---------------------------------------------------------------------


def test_the_operator_gets_an_onboarding_link_for_one_connected_account(
    client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    shop = factories.merchant(session, "Blumen")
    public_id = _merchant(session, shop).public_id
    ops = factories.operator_headers(session)
    body = {"return_url": "https://ops.example/back", "refresh_url": "https://ops.example/again"}
    url = f"/api/v1/ops/merchants/{public_id}/stripe-account-link"

    first = client.post(url, json=body, headers=ops)
    second = client.post(url, json=body, headers=ops)

    assert (first.status_code, second.status_code) == (201, 201)
    made, again = _body(first), _body(second)
    assert made["stripe_account"] == again["stripe_account"]
    assert made["url"].startswith(stripe.url) and made["url"] != again["url"]
    assert [a["id"] for a in stripe.all("account")] == [made["stripe_account"]]
    assert _merchant(session, shop).stripe_account_id == made["stripe_account"]

    plain = client.post(url, json={**body, "return_url": "http://ops.example/back"}, headers=ops)
    assert plain.status_code == 422 and set(_body(plain)["errors"]) == {"return_url"}
    missing = client.post(
        "/api/v1/ops/merchants/mer_nobody/stripe-account-link", json=body, headers=ops
    )
    assert missing.status_code == 404


def test_stripe_being_down_is_a_502_problem_for_the_operator(
    client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    public_id = _merchant(session, factories.merchant(session)).public_id
    stripe.fail_next("POST", "/v1/accounts")
    response = client.post(
        f"/api/v1/ops/merchants/{public_id}/stripe-account-link",
        json={"return_url": "https://a.example/r", "refresh_url": "https://a.example/f"},
        headers=factories.operator_headers(session),
    )
    assert response.status_code == 502
    assert _body(response)["code"] == "stripe_unavailable"


def test_the_operator_lists_payments_by_status_and_month(
    client: FlaskClient, session: Session, stripe: StripeStandIn
) -> None:
    _arrange(session, "-1.00", "A")
    _arrange(session, "2.00", "B")
    tasks.submit_payments(NOW.isoformat())
    ops = factories.operator_headers(session)

    everything = _body(client.get("/api/v1/ops/payments?month=2026-10", headers=ops))["data"]
    paid = _body(client.get("/api/v1/ops/payments?status=succeeded", headers=ops))["data"]
    other_month = _body(client.get("/api/v1/ops/payments?month=2026-09", headers=ops))["data"]
    page = _body(client.get("/api/v1/ops/payments?limit=1", headers=ops))

    assert sorted(
        (p["merchant"]["name"], p["kind"], p["amount"]["amount"], p["status"]) for p in everything
    ) == [("A", "transfer", 100, "succeeded"), ("B", "invoice", 200, "submitted")]
    assert {p["amount"]["currency"] for p in everything} == {"EUR"}
    assert [p["kind"] for p in paid] == ["transfer"]
    assert other_month == []
    assert len(page["data"]) == 1 and page["next_cursor"]
    assert client.get("/api/v1/ops/payments?status=paid", headers=ops).status_code == 422
