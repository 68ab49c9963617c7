"""The payment provider behind one small interface (SPEC 3.7): Stripe Connect accounts and their
onboarding links, customers, Transfers (the operator pays a merchant), Invoices (a merchant
pays the operator) and Checkout Sessions (a member pays for a premium membership), and the
signature check of Stripe's webhooks. This is the only module that
imports `stripe`; `payments.py` and the webhook endpoint speak in the plain values below.

Every call that creates something carries an idempotency key chosen by the caller, so a retry,
a crash or a rerun never makes a second one; when a call's outcome is unknown (a timeout after
Stripe committed), `find_transfer` and `find_invoice` look the object up by the instruction id
it was created with, which outlives Stripe's 24-hour memory of idempotency keys."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import stripe
from flask import Flask

log = logging.getLogger(__name__)

EXTENSION = "coalition.payment_gateway"
# Why payments wait when no API key is set (decision 84): then no call is made at all.
NOT_CONFIGURED = "Stripe is not configured: set STRIPE_API_KEY"
# Future timestamps: Stripe's clock and ours may disagree a little, never by a minute.
MAX_CLOCK_SKEW_SECONDS = 30
# Invoice look-up reads at most this many of a customer's invoices (newest first).
MAX_INVOICES_SCANNED = 1000
INVOICE_DAYS_UNTIL_DUE = 14
# Refusals that heal by themselves: the merchant finishes onboarding, the balance is topped up.
WAITING_CODES = frozenset(
    {
        "balance_insufficient",
        "capability_not_active",
        "insufficient_capabilities_for_transfer",
        "insufficient_funds",
        "lock_timeout",
        "idempotency_key_in_use",
        "rate_limit",
    }
)

T = TypeVar("T")


class GatewayError(Exception):
    """A call to the payment provider gave no result."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class Unavailable(GatewayError):
    """No answer, or a refusal that may heal: the outcome may be unknown, so try again later
    (after looking up what the earlier try left behind)."""


class Refused(GatewayError):
    """A definite no: this request can never succeed as it is (a card or validation error)."""


class InvalidSignature(Exception):
    """An inbound webhook whose signature, body or timestamp does not check out."""


@dataclass(frozen=True)
class MerchantProfile:
    """What Stripe is told about a merchant when its account or customer is made."""

    public_id: str
    name: str
    email: str | None
    country: str | None


@dataclass(frozen=True)
class Transfer:
    id: str
    amount_minor: int
    currency: str
    destination: str
    amount_reversed_minor: int

    @property
    def reversed(self) -> bool:
        return self.amount_reversed_minor >= self.amount_minor


@dataclass(frozen=True)
class Invoice:
    id: str
    status: str  # draft, open, paid, uncollectible, void
    total_minor: int
    currency: str
    customer: str


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str | None
    status: str  # open, complete, expired
    payment_status: str  # unpaid, paid, no_payment_required
    amount_total: int
    currency: str
    payment_intent: str | None


class PaymentGateway(Protocol):
    """What settlement needs of a payment provider. Each creating call takes the idempotency
    key its caller derives from the merchant or the payment instruction."""

    @property
    def configured(self) -> bool:
        """False without an API key: every call would fail, so none is to be made."""
        ...

    def create_account(self, merchant: MerchantProfile, idempotency_key: str) -> str:
        """A connected (Express) account for the merchant; returns its id."""
        ...

    def create_account_link(self, account_id: str, return_url: str, refresh_url: str) -> str:
        """A single-use onboarding URL for the account."""
        ...

    def create_customer(self, merchant: MerchantProfile, idempotency_key: str) -> str:
        """A customer for the merchant, to invoice; returns its id."""
        ...

    def create_transfer(
        self,
        instruction_id: str,
        amount_minor: int,
        currency: str,
        destination: str,
        metadata: dict[str, str],
    ) -> Transfer:
        """Move money to a connected account; the instruction id is the idempotency key and
        the transfer group."""
        ...

    def find_transfer(self, instruction_id: str) -> Transfer | None:
        """The transfer made for the instruction, if any."""
        ...

    def send_invoice(
        self,
        instruction_id: str,
        customer_id: str,
        amount_minor: int,
        currency: str,
        description: str,
        metadata: dict[str, str],
        existing: Invoice | None = None,
    ) -> Invoice:
        """Invoice the customer for the amount and send it: the invoice, its one item, its
        finalisation and its sending, each under a key derived from the instruction id. With
        `existing` (found by `find_invoice`) only the steps still missing are done."""
        ...

    def find_invoice(self, instruction_id: str, customer_id: str) -> Invoice | None:
        """The invoice made for the instruction, if any."""
        ...

    def create_checkout_session(
        self,
        idempotency_key: str,
        amount_minor: int,
        currency: str,
        description: str,
        success_url: str,
        cancel_url: str,
        metadata: dict[str, str],
        customer_email: str | None,
    ) -> CheckoutSession:
        """A hosted Checkout Session for one payment of the amount (a member's premium year);
        the metadata goes on the session and on its PaymentIntent."""
        ...

    def retrieve_checkout_session(self, session_id: str) -> CheckoutSession:
        """The Checkout Session as Stripe has it now."""
        ...


def gateway(app: Flask) -> PaymentGateway:
    """The app's payment gateway: Stripe at `STRIPE_API_BASE`, made once per app. Tests put
    their own in `app.extensions[EXTENSION]`."""
    found: PaymentGateway | None = app.extensions.get(EXTENSION)
    if found is None:
        found = StripeGateway(app.config["STRIPE_API_KEY"], app.config["STRIPE_API_BASE"])
        app.extensions[EXTENSION] = found
    return found


class StripeGateway:
    """`PaymentGateway` on the official SDK (`stripe.StripeClient`)."""

    def __init__(
        self,
        api_key: str | None,
        api_base: str,
        *,
        timeout: float = 30.0,
        max_network_retries: int = 2,
    ) -> None:
        self._http = stripe.RequestsClient(timeout=timeout)
        self._client = (
            stripe.StripeClient(
                api_key,
                base_addresses={"api": api_base},
                max_network_retries=max_network_retries,
                http_client=self._http,
            )
            if api_key
            else None
        )

    def close(self) -> None:
        self._http.close()

    @property
    def configured(self) -> bool:
        return self._client is not None

    @property
    def client(self) -> stripe.StripeClient:
        if self._client is None:
            raise Unavailable(NOT_CONFIGURED, code="not_configured")
        return self._client

    def create_account(self, merchant: MerchantProfile, idempotency_key: str) -> str:
        params: dict[str, Any] = {
            "type": "express",
            "capabilities": {"transfers": {"requested": True}},
            "business_profile": {"name": merchant.name},
            "metadata": {"merchant": merchant.public_id},
        }
        if merchant.email:
            params["email"] = merchant.email
        if merchant.country:
            params["country"] = merchant.country
        account = _call(
            lambda: self.client.v1.accounts.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        )
        return str(account.id)

    def create_account_link(self, account_id: str, return_url: str, refresh_url: str) -> str:
        link = _call(
            lambda: self.client.v1.account_links.create(
                {
                    "account": account_id,
                    "return_url": return_url,
                    "refresh_url": refresh_url,
                    "type": "account_onboarding",
                }
            )
        )
        return str(link.url)

    def create_customer(self, merchant: MerchantProfile, idempotency_key: str) -> str:
        params: dict[str, Any] = {
            "name": merchant.name,
            "metadata": {"merchant": merchant.public_id},
        }
        if merchant.email:
            params["email"] = merchant.email
        customer = _call(
            lambda: self.client.v1.customers.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        )
        return str(customer.id)

    def create_transfer(
        self,
        instruction_id: str,
        amount_minor: int,
        currency: str,
        destination: str,
        metadata: dict[str, str],
    ) -> Transfer:
        transfer = _call(
            lambda: self.client.v1.transfers.create(
                {
                    "amount": amount_minor,
                    "currency": currency.lower(),
                    "destination": destination,
                    "transfer_group": instruction_id,
                    "metadata": {**metadata, "instruction": instruction_id},
                },
                {"idempotency_key": instruction_id},
            )
        )
        return _transfer(transfer)

    def find_transfer(self, instruction_id: str) -> Transfer | None:
        page = _call(
            lambda: self.client.v1.transfers.list({"transfer_group": instruction_id, "limit": 10})
        )
        found = [
            t
            for t in page.data
            if t.transfer_group == instruction_id
            or _metadata(t).get("instruction") == instruction_id
        ]
        if len(found) > 1:
            log.error("instruction %s has %d transfers at Stripe", instruction_id, len(found))
        return _transfer(found[-1]) if found else None  # the oldest: the list is newest first

    def send_invoice(
        self,
        instruction_id: str,
        customer_id: str,
        amount_minor: int,
        currency: str,
        description: str,
        metadata: dict[str, str],
        existing: Invoice | None = None,
    ) -> Invoice:
        invoices = self.client.v1.invoices
        if existing is None:
            created = _call(
                lambda: invoices.create(
                    {
                        "customer": customer_id,
                        "collection_method": "send_invoice",
                        "days_until_due": INVOICE_DAYS_UNTIL_DUE,
                        "currency": currency.lower(),
                        "auto_advance": False,
                        "pending_invoice_items_behavior": "exclude",
                        "description": description,
                        "metadata": {**metadata, "instruction": instruction_id},
                    },
                    {"idempotency_key": f"{instruction_id}:invoice"},
                )
            )
            invoice = _invoice(created)
        else:
            invoice = existing
        if invoice.status == "draft" and invoice.total_minor == 0:
            _call(
                lambda: self.client.v1.invoice_items.create(
                    {
                        "customer": customer_id,
                        "invoice": invoice.id,
                        "amount": amount_minor,
                        "currency": currency.lower(),
                        "description": description,
                        "metadata": {"instruction": instruction_id},
                    },
                    {"idempotency_key": f"{instruction_id}:item"},
                )
            )
            invoice = _invoice(_call(lambda: invoices.retrieve(invoice.id)))
        if invoice.total_minor != amount_minor:
            # Never finalise or send an invoice for another amount; a person must look.
            raise Unavailable(
                f"invoice {invoice.id} totals {invoice.total_minor}, not {amount_minor}",
                code="amount_mismatch",
            )
        if invoice.status == "draft":
            invoice = _invoice(
                _call(
                    lambda: invoices.finalize_invoice(
                        invoice.id,
                        {"auto_advance": False},
                        {"idempotency_key": f"{instruction_id}:finalize"},
                    )
                )
            )
        if invoice.status == "open":
            invoice = _invoice(
                _call(
                    lambda: invoices.send_invoice(
                        invoice.id, options={"idempotency_key": f"{instruction_id}:send"}
                    )
                )
            )
        return invoice

    def find_invoice(self, instruction_id: str, customer_id: str) -> Invoice | None:
        # A list, not the search API: search is only eventually consistent.
        page = _call(lambda: self.client.v1.invoices.list({"customer": customer_id, "limit": 100}))
        found = []
        for scanned, item in enumerate(page.auto_paging_iter()):
            if scanned >= MAX_INVOICES_SCANNED:
                log.warning("invoice look-up for %s stopped after %d", instruction_id, scanned)
                break
            if _metadata(item).get("instruction") == instruction_id:
                found.append(item)
        if len(found) > 1:
            log.error("instruction %s has %d invoices at Stripe", instruction_id, len(found))
        return _invoice(found[-1]) if found else None

    def create_checkout_session(
        self,
        idempotency_key: str,
        amount_minor: int,
        currency: str,
        description: str,
        success_url: str,
        cancel_url: str,
        metadata: dict[str, str],
        customer_email: str | None,
    ) -> CheckoutSession:
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": currency.lower(),
                        "unit_amount": amount_minor,
                        "product_data": {"name": description},
                    },
                }
            ],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata, "description": description},
        }
        if customer_email:
            params["customer_email"] = customer_email
        created = _call(
            lambda: self.client.v1.checkout.sessions.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        )
        return _checkout(created)

    def retrieve_checkout_session(self, session_id: str) -> CheckoutSession:
        return _checkout(_call(lambda: self.client.v1.checkout.sessions.retrieve(session_id)))


def _call(request: Callable[[], T]) -> T:
    """Run one SDK call, turning Stripe's errors into `Refused` (never going to work) or
    `Unavailable` (try again later)."""
    try:
        return request()
    except stripe.CardError as exc:
        raise Refused(exc.user_message or str(exc), code=exc.code) from exc
    except stripe.InvalidRequestError as exc:
        if exc.code in WAITING_CODES:
            raise Unavailable(exc.user_message or str(exc), code=exc.code) from exc
        raise Refused(exc.user_message or str(exc), code=exc.code) from exc
    except stripe.StripeError as exc:
        # Connection errors and time-outs (the outcome is unknown), 5xx, rate limits, a bad
        # key, an idempotency key reused with other parameters: none is the payment's fault.
        raise Unavailable(str(exc).strip() or type(exc).__name__, code=exc.code) from exc


def _metadata(obj: Any) -> dict[str, Any]:
    metadata = getattr(obj, "metadata", None)  # a StripeObject, not a dict
    return dict(metadata.to_dict()) if metadata is not None else {}


def _transfer(obj: Any) -> Transfer:
    destination = obj.destination
    return Transfer(
        id=str(obj.id),
        amount_minor=int(obj.amount),
        currency=str(obj.currency).upper(),
        destination=destination if isinstance(destination, str) else str(destination.id),
        amount_reversed_minor=int(obj.amount_reversed or 0),
    )


def _invoice(obj: Any) -> Invoice:
    customer = obj.customer
    return Invoice(
        id=str(obj.id),
        status=str(obj.status),
        total_minor=int(obj.total or 0),
        currency=str(obj.currency).upper(),
        customer=customer if isinstance(customer, str) else str(customer.id),
    )


def _checkout(obj: Any) -> CheckoutSession:
    intent = obj.payment_intent
    return CheckoutSession(
        id=str(obj.id),
        url=obj.url,
        status=str(obj.status),
        payment_status=str(obj.payment_status),
        amount_total=int(obj.amount_total or 0),
        currency=str(obj.currency).upper(),
        payment_intent=intent if intent is None or isinstance(intent, str) else str(intent.id),
    )


def verify_event(
    payload: bytes, header: str | None, secret: str | None, tolerance: int, now: float
) -> dict[str, Any]:
    """The Stripe event in `payload` once `header` (`Stripe-Signature`) proves Stripe signed
    exactly these bytes with `secret` less than `tolerance` seconds before `now`. The SDK checks
    the signature and the past; a timestamp from the future is refused here too."""
    if not secret:
        raise InvalidSignature("no STRIPE_WEBHOOK_SECRET is set; inbound events are refused")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidSignature("the body is not UTF-8") from exc
    try:
        stripe.WebhookSignature.verify_header(text, header, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature(str(exc)) from exc
    timestamp = _timestamp(header or "")
    if timestamp > now + MAX_CLOCK_SKEW_SECONDS:
        raise InvalidSignature("the signature's timestamp is in the future")
    if timestamp <= now - tolerance:
        raise InvalidSignature("the signature is too old")
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise InvalidSignature("the body is not JSON") from exc
    if not isinstance(event, dict) or event.get("object") != "event" or "id" not in event:
        raise InvalidSignature("the body is not a Stripe event")
    return event


def _timestamp(header: str) -> int:
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            return int(value)
    raise InvalidSignature("the signature header has no timestamp")
