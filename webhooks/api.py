"""A merchant's webhook endpoints (SPEC 3.6): `/api/v1/webhook-endpoints` (register, list, read,
change, delete, rotate the secret, send a test event, read the delivery log) and
`POST /api/v1/events/{id}/redeliver`. Scope `webhooks:write`, merchant tokens only. Thin:
validate with `webhooks.schemas`, call `webhooks.services` or `webhooks.reads`, serialise.
POSTs go through `idempotent` (one transaction, the Idempotency-Key honoured)."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app

from coalition import clock
from coalition.extensions import db
from coalition.web.access import principal, require
from coalition.web.api import blueprint, decode_cursor, idempotent, page_schema, paginate
from webhooks import reads, schemas, services

bp = blueprint("webhook_endpoints", __name__, "Webhook endpoints, their delivery log, redelivery")

SCOPE = "webhooks:write"
MERCHANT = ("merchant",)
# A secret is shown once: no cache, no proxy, may keep the answer.
NO_STORE = {"Cache-Control": "no-store"}


def _merchant_id() -> int:
    merchant_id = principal().merchant_id
    if merchant_id is None:  # `require` lets only merchant tokens in
        raise AssertionError("a merchant route ran without a merchant")
    return merchant_id


def _allow_private() -> bool:
    return bool(current_app.config["WEBHOOKS_ALLOW_PRIVATE"])


def _with_secret(done: services.WithSecret) -> dict[str, Any]:
    return schemas.WebhookEndpointWithSecretOut().dump(
        {**done.endpoint.as_dict(), "secret": done.secret}
    )


def _no_store(response: Response) -> Response:
    response.headers.update(NO_STORE)
    return response


def _queued(queued: list[services.Queued]) -> dict[str, Any]:
    return schemas.QueuedDeliveriesOut().dump(
        {
            "data": [
                {
                    "endpoint": q.endpoint,
                    "event": q.event,
                    "status": "pending",
                    "next_attempt_at": q.next_attempt_at,
                }
                for q in queued
            ]
        }
    )


@bp.route("/webhook-endpoints", methods=["POST"])
@require(SCOPE, kinds=MERCHANT)
@bp.arguments(schemas.WebhookEndpointIn)
@bp.response(201, schemas.WebhookEndpointWithSecretOut)
@bp.alt_response(
    409,
    description="16 endpoints already (`too_many_endpoints`), or the Idempotency-Key was used "
    "for another request (`idempotency_conflict`).",
)
@bp.alt_response(
    422, description="An unsafe URL (`unsafe_webhook_url`) or an invalid field; nothing written."
)
def create_endpoint(body: dict[str, Any]) -> Any:
    """Register an endpoint. The answer holds its `whsec_` secret, shown this once: store it
    to verify the `webhook-signature` of each delivery. At most 16 endpoints per merchant."""
    session, now, merchant_id = db.session(), clock.utcnow(), _merchant_id()
    allow_private = _allow_private()

    def create() -> tuple[int, dict[str, Any]]:
        done = services.create_endpoint(
            session,
            merchant_id,
            url=body["url"],
            events=body.get("events"),
            description=body.get("description"),
            allow_private=allow_private,
            now=now,
        )
        return 201, _with_secret(done)

    return _no_store(idempotent(create))


@bp.route("/webhook-endpoints", methods=["GET"])
@require(SCOPE, kinds=MERCHANT)
@bp.arguments(schemas.WebhookEndpointsArgs, location="query")
@bp.response(200, page_schema(schemas.WebhookEndpointOut, "WebhookEndpointPage"))
def list_endpoints(args: dict[str, Any]) -> Any:
    """The merchant's endpoints, newest first (never their secrets)."""
    now = clock.utcnow()
    return paginate(
        reads.live(_merchant_id()),
        reads.ENDPOINT_ID,
        args,
        lambda row: reads.view(row, now).as_dict(),
    )


@bp.route("/webhook-endpoints/<endpoint_id>", methods=["GET"])
@require(SCOPE, kinds=MERCHANT)
@bp.response(200, schemas.WebhookEndpointOut)
def get_endpoint(endpoint_id: str) -> Any:
    """One endpoint (never its secret). Another merchant's, or a deleted one: `404`."""
    return reads.endpoint(db.session(), _merchant_id(), endpoint_id, clock.utcnow()).as_dict()


@bp.route("/webhook-endpoints/<endpoint_id>", methods=["PATCH"])
@require(SCOPE, kinds=MERCHANT)
@bp.arguments(schemas.WebhookEndpointChange)
@bp.response(200, schemas.WebhookEndpointOut)
@bp.alt_response(422, description="An unsafe URL (`unsafe_webhook_url`) or an invalid field.")
def change_endpoint(changes: dict[str, Any], endpoint_id: str) -> Any:
    """Change the URL, the events (`null`: all), the description, or turn deliveries off
    (`enabled: false`) and on again: re-enabled, an endpoint the platform turned off (410 Gone,
    five days failing) gets the deliveries that waited."""
    session = db.session()
    done = services.update_endpoint(
        session,
        _merchant_id(),
        endpoint_id,
        changes,
        allow_private=_allow_private(),
        now=clock.utcnow(),
    )
    session.commit()
    return done.as_dict()


@bp.route("/webhook-endpoints/<endpoint_id>", methods=["DELETE"])
@require(SCOPE, kinds=MERCHANT)
@bp.response(204)
def delete_endpoint(endpoint_id: str) -> Any:
    """Delete the endpoint: nothing more is sent to it, and its waiting deliveries end
    `failed`. Its delivery log is kept but no longer shown."""
    session = db.session()
    services.delete_endpoint(session, _merchant_id(), endpoint_id, clock.utcnow())
    session.commit()
    return ""


@bp.route("/webhook-endpoints/<endpoint_id>/rotate-secret", methods=["POST"])
@require(SCOPE, kinds=MERCHANT)
@bp.response(200, schemas.WebhookEndpointWithSecretOut)
@bp.alt_response(409, description="The Idempotency-Key was used for another request.")
def rotate_secret(endpoint_id: str) -> Any:
    """A new secret, shown this once. For 24 hours each delivery carries two signatures, the
    old secret's and the new one's, so receivers can switch without losing one."""
    session, now, merchant_id = db.session(), clock.utcnow(), _merchant_id()
    return _no_store(
        idempotent(
            lambda: (
                200,
                _with_secret(services.rotate_secret(session, merchant_id, endpoint_id, now)),
            )
        )
    )


@bp.route("/webhook-endpoints/<endpoint_id>/test", methods=["POST"])
@require(SCOPE, kinds=MERCHANT)
@bp.response(202, schemas.QueuedDeliveriesOut)
@bp.alt_response(
    409,
    description="The endpoint is disabled (`endpoint_disabled`), or the Idempotency-Key was "
    "used for another request.",
)
def send_test_event(endpoint_id: str) -> Any:
    """Send a `webhook_endpoint.test` event to this endpoint only. It is delivered, signed and
    retried like any other; its attempts show in the delivery log."""
    session, now, merchant_id = db.session(), clock.utcnow(), _merchant_id()
    return idempotent(
        lambda: (
            202,
            _queued([services.send_test_event(session, merchant_id, endpoint_id, now)]),
        )
    )


@bp.route("/webhook-endpoints/<endpoint_id>/deliveries", methods=["GET"])
@require(SCOPE, kinds=MERCHANT)
@bp.arguments(schemas.WebhookAttemptsArgs, location="query")
@bp.response(200, page_schema(schemas.WebhookAttemptOut, "WebhookAttemptPage"))
def deliveries(args: dict[str, Any], endpoint_id: str) -> Any:
    """The endpoint's delivery log, newest attempt first: when, which event, the HTTP status
    answered (null if none came), how long it took and why it failed. Never a response body."""
    merchant_id = _merchant_id()
    if args.get("cursor"):
        # A cursor this list never gave out is refused before anything is looked up, whichever
        # endpoint the path names (the answer says nothing of whether it exists).
        decode_cursor(args["cursor"])
    row = reads.endpoint_row(db.session(), merchant_id, endpoint_id)
    return paginate(
        reads.attempts_query(merchant_id, row.id), reads.ATTEMPT_ID, args, reads.attempt_view
    )


@bp.route("/events/<event_id>/redeliver", methods=["POST"])
@require(SCOPE, kinds=MERCHANT)
@bp.arguments(schemas.RedeliverIn, required=False)
@bp.response(202, schemas.QueuedDeliveriesOut)
@bp.alt_response(
    409,
    description="The named endpoint is disabled (`endpoint_disabled`), or the Idempotency-Key "
    "was used for another request.",
)
@bp.alt_response(422, description="The named endpoint does not subscribe to the event's type.")
def redeliver(body: dict[str, Any], event_id: str) -> Any:
    """Deliver an event again, from the first attempt of a fresh schedule, to every enabled
    endpoint that would hear it or to the one named. The `webhook-id` is the event's id, as
    before: receivers that deduplicate see the same event."""
    session, now, merchant_id = db.session(), clock.utcnow(), _merchant_id()
    return idempotent(
        lambda: (
            202,
            _queued(services.redeliver(session, merchant_id, event_id, body.get("endpoint"), now)),
        )
    )
