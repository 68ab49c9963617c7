"""A stateful stand-in for the parts of Stripe's API that `settlement.gateway` calls, served over
real HTTP on 127.0.0.1 (a random port, a background thread), so the official SDK is exercised
exactly as against Stripe, without the internet.

It keeps accounts, account links, customers, transfers (create, retrieve, list by
`transfer_group`), invoice items and invoices (create, retrieve, list by customer, finalize, send)
and Checkout Sessions in payment mode (create, retrieve; completed, expired or refunded on a test's
word), and checks idempotency keys as Stripe does: the same key with the same request replays the
first response; with a different request it is a 400 `idempotency_error`; a key still executing is
a 409. It counts the effects done under each key, and fails on demand: a 500 before a request runs
(nothing done, nothing saved under the key, as at Stripe), a 4xx refusal, and a time-out after
commit (the effect is done and saved, then the answer is held until the client has given up). It
also makes, signs (`t=<ts>,v1=<hex HMAC-SHA256 of "t.payload">`) and delivers webhook events,
several copies at once if asked.

(`localstripe` was tried first: it installs and runs, but has no connected accounts, account
links or transfers, no invoice finalize/send, and ignores idempotency keys.)"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from settlement.gateway import EXTENSION, StripeGateway


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@contextmanager
def serve(wsgi_app: Any) -> Iterator[str]:
    """Serve a WSGI app on 127.0.0.1 at a random port in a background thread; yields its URL."""
    server: BaseWSGIServer = make_server(
        "127.0.0.1", 0, wsgi_app, threaded=True, request_handler=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def sign(payload: str, secret: str, timestamp: int) -> str:
    """Stripe's `Stripe-Signature` header for `payload`, written out here independently of the
    SDK so the endpoint's check is tested against the scheme, not against itself."""
    digest = hmac.new(
        secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def _form(raw: str) -> dict[str, Any]:
    """Stripe's form encoding (`metadata[instruction]=pay_x`) as nested dicts."""
    result: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        name, *parts = re.findall(r"[^\[\]]+", key)
        target = result
        path = [name, *parts]
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return result


class StripeFailure(Exception):
    def __init__(self, status: int, type_: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.code = status, type_, message, code

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
        return {"error": error}


@dataclass
class _Fault:
    method: str
    path: str
    kind: str  # "500", "refuse", "hold"
    status: int = 500
    code: str | None = None


@dataclass
class _Saved:
    fingerprint: str
    status: int
    body: dict[str, Any]


@dataclass
class StripeStandIn:
    """The stand-in's state; `url` once started."""

    url: str = ""
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    effects: Counter[str] = field(default_factory=Counter)  # executed creates per key
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # what Stripe would send
    sent: Counter[str] = field(default_factory=Counter)  # invoice id -> times sent
    _saved: dict[str, _Saved] = field(default_factory=dict)
    _running: set[str] = field(default_factory=set)
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)
    _clock: Iterator[int] = field(default_factory=lambda: itertools.count(int(time.time())))

    # -- fault injection -----------------------------------------------------------------------

    def fail_next(self, method: str, path: str) -> None:
        """The next matching request answers 500 before it runs (nothing done or saved)."""
        self._faults.append(_Fault(method, path, "500"))

    def refuse_next(
        self, method: str, path: str, status: int = 400, code: str = "parameter_invalid"
    ) -> None:
        """The next matching request is refused (400 `invalid_request_error`, or 402
        `card_error`), without effect."""
        self._faults.append(_Fault(method, path, "refuse", status, code))

    def hold_next(self, method: str, path: str) -> None:
        """The next matching request is done and saved under its key, then its answer is
        held until `release()` (at the latest at `stop`): the client times out after Stripe
        committed."""
        self._faults.append(_Fault(method, path, "hold"))

    def release(self) -> None:
        self._release.set()

    def _fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method == method and path.startswith(fault.path):
                    self._faults.remove(fault)
                    return fault
        return None

    # -- what tests look at --------------------------------------------------------------------

    def all(self, kind: str) -> list[dict[str, Any]]:
        return list(self.objects.get(kind, {}).values())

    def get(self, kind: str, object_id: str) -> dict[str, Any]:
        return self.objects[kind][object_id]

    def events_about(self, object_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["data"]["object"].get("id") == object_id]

    # -- Stripe's side of the story ------------------------------------------------------------

    def event(self, type_: str, obj: dict[str, Any], account: str | None = None) -> dict[str, Any]:
        """A Stripe event about `obj` (a snapshot of it now), recorded as sent."""
        made = {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": next(self._clock),
            "type": type_,
            "livemode": False,
            "pending_webhooks": 1,
            "data": {"object": json.loads(json.dumps(obj))},
        }
        if account:
            made["account"] = account
        self.events.append(made)
        return made

    def pay_invoice(self, invoice_id: str) -> dict[str, Any]:
        invoice = self.get("invoice", invoice_id)
        invoice.update(status="paid", amount_paid=invoice["total"], amount_remaining=0)
        return self.event("invoice.paid", invoice)

    def fail_invoice_payment(self, invoice_id: str) -> dict[str, Any]:
        invoice = self.get("invoice", invoice_id)
        invoice["attempt_count"] = invoice.get("attempt_count", 0) + 1
        return self.event("invoice.payment_failed", invoice)

    def mark_uncollectible(self, invoice_id: str) -> dict[str, Any]:
        invoice = self.get("invoice", invoice_id)
        invoice["status"] = "uncollectible"
        return self.event("invoice.marked_uncollectible", invoice)

    def reverse_transfer(self, transfer_id: str) -> dict[str, Any]:
        transfer = self.get("transfer", transfer_id)
        transfer.update(amount_reversed=transfer["amount"], reversed=True)
        return self.event("transfer.reversed", transfer)

    def complete_checkout(self, session_id: str) -> dict[str, Any]:
        """The member paid: the session completes with a PaymentIntent."""
        checkout = self.get("checkout.session", session_id)
        intent = self._store(
            "payment_intent",
            "pi",
            {
                "amount": checkout["amount_total"],
                "currency": checkout["currency"],
                "status": "succeeded",
                "metadata": checkout["payment_intent_data"].get("metadata", {}),
            },
        )
        checkout.update(status="complete", payment_status="paid", payment_intent=intent["id"])
        return self.event("checkout.session.completed", checkout)

    def expire_checkout(self, session_id: str) -> dict[str, Any]:
        checkout = self.get("checkout.session", session_id)
        checkout.update(status="expired", url=None)
        return self.event("checkout.session.expired", checkout)

    def refund_payment(self, payment_intent_id: str) -> dict[str, Any]:
        """The whole payment goes back: a `charge.refunded` event."""
        intent = self.get("payment_intent", payment_intent_id)
        charge = {
            "id": "ch_" + secrets.token_hex(12),
            "object": "charge",
            "amount": intent["amount"],
            "amount_refunded": intent["amount"],
            "currency": intent["currency"],
            "payment_intent": payment_intent_id,
            "refunded": True,
        }
        return self.event("charge.refunded", charge)

    def payout(self, account: str, status: str) -> dict[str, Any]:
        obj = {
            "id": "po_" + secrets.token_hex(8),
            "object": "payout",
            "amount": 1000,
            "currency": "eur",
            "status": status,
            "failure_code": "account_closed" if status == "failed" else None,
        }
        return self.event(f"payout.{status}", obj, account=account)

    # -- webhooks ------------------------------------------------------------------------------

    @staticmethod
    def signed(
        event: dict[str, Any], secret: str, timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of a delivery of `event`."""
        payload = json.dumps(event, indent=2)
        header = sign(payload, secret, int(time.time()) if timestamp is None else timestamp)
        return payload.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}

    def deliver(self, url: str, event: dict[str, Any], secret: str, copies: int = 1) -> list[int]:
        """POST `event` to `url`, `copies` times at once (each on its own connection, released
        together); returns the status codes."""
        body, headers = self.signed(event, secret)
        start = threading.Barrier(copies)
        statuses: list[int] = [0] * copies

        def post(index: int) -> None:
            start.wait()
            statuses[index] = requests.post(url, data=body, headers=headers, timeout=30).status_code

        threads = [threading.Thread(target=post, args=(i,)) for i in range(copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        return statuses

    # -- the HTTP API --------------------------------------------------------------------------

    @contextmanager
    def running(self) -> Iterator[StripeStandIn]:
        with serve(self._wsgi) as url:
            self.url = url
            try:
                yield self
            finally:
                self._release.set()

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        method, path = request.method, request.path
        key = request.headers.get("Idempotency-Key")
        self.calls.append((method, path, key))
        if not request.headers.get("Authorization", "").startswith("Bearer sk_test_"):
            failure = StripeFailure(401, "invalid_request_error", "Invalid API Key provided")
            return self._answer(failure.status, failure.body())(environ, start_response)
        params = _form(
            request.get_data(as_text=True) if method == "POST" else request.query_string.decode()
        )
        fault = self._fault(method, path)
        if fault is not None and fault.kind == "500":
            body = {"error": {"type": "api_error", "message": "An unknown error occurred"}}
            return self._answer(500, body)(environ, start_response)
        if fault is not None and fault.kind == "refuse":
            type_ = "card_error" if fault.status == 402 else "invalid_request_error"
            failure = StripeFailure(fault.status, type_, "Refused by the stand-in", fault.code)
            return self._answer(failure.status, failure.body())(environ, start_response)
        status, body, replayed = self._idempotent(method, path, key, params)
        if fault is not None and fault.kind == "hold":
            self._release.wait(timeout=30)
        response = self._answer(status, body)
        if replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return response(environ, start_response)

    @staticmethod
    def _answer(status: int, body: dict[str, Any]) -> Response:
        return Response(json.dumps(body), status=status, mimetype="application/json")

    def _idempotent(
        self, method: str, path: str, key: str | None, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any], bool]:
        if method != "POST" or key is None:
            return (*self._run(method, path, params, key), False)
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        with self._lock:
            saved = self._saved.get(key)
            if saved is None and key in self._running:
                failure = StripeFailure(
                    409,
                    "invalid_request_error",
                    "There is currently another in-progress request using this key",
                    "idempotency_key_in_use",
                )
                return failure.status, failure.body(), False
            if saved is None:
                self._running.add(key)
        if saved is not None:
            if saved.fingerprint != fingerprint:
                failure = StripeFailure(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters"
                    " they were first used with.",
                )
                return failure.status, failure.body(), False
            return saved.status, saved.body, True
        try:
            status, body = self._run(method, path, params, key)
            with self._lock:
                # The first answer as it was then, not the object as it is later.
                self._saved[key] = _Saved(fingerprint, status, json.loads(json.dumps(body)))
        finally:
            with self._lock:
                self._running.discard(key)
        return status, body, False

    def _run(
        self, method: str, path: str, params: dict[str, Any], key: str | None
    ) -> tuple[int, dict[str, Any]]:
        for route_method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if match and route_method == method:
                try:
                    made = handler(params, *match.groups())
                except StripeFailure as refusal:
                    return refusal.status, refusal.body()
                if method == "POST" and key is not None:
                    self.effects[key] += 1
                return 200, made
        unknown = StripeFailure(404, "invalid_request_error", f"Unrecognized request URL {path}")
        return unknown.status, unknown.body()

    def _routes(self) -> list[tuple[str, str, Callable[..., dict[str, Any]]]]:
        return [
            ("POST", r"/v1/accounts", self._create_account),
            ("GET", r"/v1/accounts/([^/]+)", lambda p, i: self._find("account", i)),
            ("POST", r"/v1/account_links", self._create_account_link),
            ("POST", r"/v1/customers", self._create_customer),
            ("GET", r"/v1/customers/([^/]+)", lambda p, i: self._find("customer", i)),
            ("POST", r"/v1/transfers", self._create_transfer),
            ("GET", r"/v1/transfers", self._list_transfers),
            ("GET", r"/v1/transfers/([^/]+)", lambda p, i: self._find("transfer", i)),
            ("POST", r"/v1/invoices", self._create_invoice),
            ("GET", r"/v1/invoices", self._list_invoices),
            ("GET", r"/v1/invoices/([^/]+)", lambda p, i: self._find("invoice", i)),
            ("POST", r"/v1/invoices/([^/]+)/finalize", self._finalize_invoice),
            ("POST", r"/v1/invoices/([^/]+)/send", self._send_invoice),
            ("POST", r"/v1/invoiceitems", self._create_invoice_item),
            ("POST", r"/v1/checkout/sessions", self._create_checkout_session),
            (
                "GET",
                r"/v1/checkout/sessions/([^/]+)",
                lambda p, i: self._find("checkout.session", i),
            ),
        ]

    # -- resources -----------------------------------------------------------------------------

    def _store(self, kind: str, prefix: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj = {
            "id": f"{prefix}_{secrets.token_hex(12)}",
            "object": kind,
            "created": next(self._clock),
            "livemode": False,
            **obj,
        }
        with self._lock:
            self.objects.setdefault(kind, {})[obj["id"]] = obj
        return obj

    def _find(self, kind: str, object_id: str) -> dict[str, Any]:
        found = self.objects.get(kind, {}).get(object_id)
        if found is None:
            raise StripeFailure(
                404, "invalid_request_error", f"No such {kind}: '{object_id}'", "resource_missing"
            )
        return found

    @staticmethod
    def _amount(params: dict[str, Any]) -> int:
        raw = params.get("amount", "")
        if not raw.isdigit() or int(raw) <= 0:
            raise StripeFailure(
                400,
                "invalid_request_error",
                "Invalid positive integer",
                "parameter_invalid_integer",
            )
        return int(raw)

    def _create_account(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("type") not in ("express", "standard", "custom"):
            raise StripeFailure(400, "invalid_request_error", "type is required")
        return self._store(
            "account",
            "acct",
            {
                "type": params["type"],
                "email": params.get("email"),
                "country": params.get("country", "DE"),
                "metadata": params.get("metadata", {}),
                "capabilities": {"transfers": "inactive"},
                "charges_enabled": False,
                "payouts_enabled": False,
                "details_submitted": False,
            },
        )

    def _create_account_link(self, params: dict[str, Any]) -> dict[str, Any]:
        account = self._find("account", params.get("account", ""))
        if params.get("type") != "account_onboarding":
            raise StripeFailure(400, "invalid_request_error", "type must be account_onboarding")
        return {
            "object": "account_link",
            "created": next(self._clock),
            "expires_at": next(self._clock) + 300,
            "url": f"{self.url}/setup/e/{account['id']}/{secrets.token_urlsafe(16)}",
        }

    def _create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._store(
            "customer",
            "cus",
            {
                "name": params.get("name"),
                "email": params.get("email"),
                "metadata": params.get("metadata", {}),
            },
        )

    def _create_transfer(self, params: dict[str, Any]) -> dict[str, Any]:
        amount = self._amount(params)
        destination = params.get("destination", "")
        if destination not in self.objects.get("account", {}):
            raise StripeFailure(
                400, "invalid_request_error", f"No such destination: '{destination}'"
            )
        transfer = self._store(
            "transfer",
            "tr",
            {
                "amount": amount,
                "amount_reversed": 0,
                "reversed": False,
                "currency": params.get("currency", ""),
                "destination": destination,
                "transfer_group": params.get("transfer_group"),
                "metadata": params.get("metadata", {}),
            },
        )
        self.event("transfer.created", transfer)
        return transfer

    @staticmethod
    def _page(items: list[dict[str, Any]], params: dict[str, Any], url: str) -> dict[str, Any]:
        items = sorted(items, key=lambda o: o["created"], reverse=True)
        after = params.get("starting_after")
        if after:
            ids = [o["id"] for o in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        limit = int(params.get("limit", "10"))
        return {
            "object": "list",
            "url": url,
            "has_more": len(items) > limit,
            "data": items[:limit],
        }

    def _list_transfers(self, params: dict[str, Any]) -> dict[str, Any]:
        group = params.get("transfer_group")
        items = [t for t in self.all("transfer") if group is None or t["transfer_group"] == group]
        return self._page(items, params, "/v1/transfers")

    def _create_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = self._find("customer", params.get("customer", ""))
        return self._store(
            "invoice",
            "in",
            {
                "customer": customer["id"],
                "status": "draft",
                "collection_method": params.get("collection_method", "charge_automatically"),
                "currency": params.get("currency", "eur"),
                "description": params.get("description"),
                "metadata": params.get("metadata", {}),
                "auto_advance": params.get("auto_advance") == "true",
                "total": 0,
                "amount_due": 0,
                "amount_paid": 0,
                "lines": {"object": "list", "data": [], "has_more": False},
            },
        )

    def _create_checkout_session(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("mode") != "payment":
            raise StripeFailure(400, "invalid_request_error", "mode must be payment")
        item = params.get("line_items", {}).get("0", {})
        price = item.get("price_data", {})
        amount = self._amount({"amount": price.get("unit_amount", "")})
        for url in ("success_url", "cancel_url"):
            if not params.get(url, "").startswith(("http://", "https://")):
                raise StripeFailure(400, "invalid_request_error", f"{url} must be a URL")
        made = self._store(
            "checkout.session",
            "cs_test",
            {
                "mode": "payment",
                "status": "open",
                "payment_status": "unpaid",
                "amount_total": amount * int(item.get("quantity", "1")),
                "currency": price.get("currency", ""),
                "customer_email": params.get("customer_email"),
                "success_url": params["success_url"],
                "cancel_url": params["cancel_url"],
                "metadata": params.get("metadata", {}),
                "payment_intent_data": params.get("payment_intent_data", {}),
                "payment_intent": None,
            },
        )
        made["url"] = f"{self.url}/checkout/{made['id']}"
        return made

    def _list_invoices(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = params.get("customer")
        items = [i for i in self.all("invoice") if customer is None or i["customer"] == customer]
        return self._page(items, params, "/v1/invoices")

    def _create_invoice_item(self, params: dict[str, Any]) -> dict[str, Any]:
        amount = self._amount(params)
        invoice = self._find("invoice", params.get("invoice", ""))
        if invoice["status"] != "draft":
            raise StripeFailure(400, "invalid_request_error", "the invoice is not a draft")
        item = self._store(
            "invoiceitem",
            "ii",
            {
                "amount": amount,
                "currency": params.get("currency"),
                "customer": params.get("customer"),
                "invoice": invoice["id"],
                "description": params.get("description"),
                "metadata": params.get("metadata", {}),
            },
        )
        invoice["lines"]["data"].append(item)
        invoice["total"] = invoice["amount_due"] = invoice["total"] + amount
        return item

    def _finalize_invoice(self, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
        invoice = self._find("invoice", invoice_id)
        if invoice["status"] != "draft":
            raise StripeFailure(400, "invalid_request_error", "the invoice is already finalized")
        invoice["status"] = "open"
        self.event("invoice.finalized", invoice)
        return invoice

    def _send_invoice(self, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
        invoice = self._find("invoice", invoice_id)
        if invoice["status"] != "open":
            raise StripeFailure(400, "invalid_request_error", "only open invoices can be sent")
        self.sent[invoice_id] += 1
        self.event("invoice.sent", invoice)
        return invoice


# -- wiring it into the app under test ---------------------------------------------------------


@contextmanager
def stripe_for(app: Flask, timeout: float = 2.0) -> Iterator[StripeStandIn]:
    """A running stand-in, and the app's payment gateway pointed at it (the official SDK, no
    retries of its own, giving up after `timeout` seconds); the app's own gateway after."""
    stand_in = StripeStandIn()
    with stand_in.running():
        gateway = StripeGateway(
            "sk_test_standin", stand_in.url, timeout=timeout, max_network_retries=0
        )
        previous = app.extensions.get(EXTENSION)
        app.extensions[EXTENSION] = gateway
        try:
            yield stand_in
        finally:
            if previous is None:
                app.extensions.pop(EXTENSION, None)
            else:
                app.extensions[EXTENSION] = previous
            gateway.close()
