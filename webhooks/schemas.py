"""Request and response bodies of the webhook endpoints API (SPEC 3.6). Names are unique across
the API (the OpenAPI document names its components after them)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from coalition.privacy.schemas import JsonBoolean
from coalition.web.api import HTTP_URL, PLAIN_TEXT, PageArgs, Strict, pattern
from webhooks.catalogue import SUBSCRIBABLE
from webhooks.services import MAX_DESCRIPTION

# An https URL with a host (the API's URL pattern without `http`).
HTTPS_URL = HTTP_URL.replace("^https?://", "^https://")

_URL_WORDS = (
    "Where deliveries are POSTed: an `https` URL (at most 2,048 characters) whose host resolves "
    "only to public internet addresses. An `http` URL, or a host that is or resolves to a "
    "private, loopback, link-local, CGNAT, multicast or reserved address, is refused with "
    "`422 unsafe_webhook_url` and nothing is written (the operator's development setting "
    "`WEBHOOKS_ALLOW_PRIVATE` lifts the address check, never the `https`)."
)
_EVENTS_WORDS = (
    "The event types to receive, at least one; `null` or left out: every type, those added "
    "later included."
)


def _url(required: bool) -> fields.String:
    return fields.String(
        required=required,
        validate=[validate.Length(min=1, max=2048), pattern(HTTPS_URL, "must be an https URL")],
        metadata={"description": _URL_WORDS},
    )


def _events() -> fields.List:
    return fields.List(
        fields.String(validate=validate.OneOf(SUBSCRIBABLE)),
        allow_none=True,
        validate=validate.Length(min=1, max=len(SUBSCRIBABLE)),
        metadata={"description": _EVENTS_WORDS},
    )


def _description() -> fields.String:
    return fields.String(
        validate=[
            validate.Length(max=MAX_DESCRIPTION),
            pattern(PLAIN_TEXT, "must not contain control characters"),
        ],
        metadata={"description": "What the endpoint is for, for the merchant's own eyes."},
    )


class WebhookEndpointIn(Strict):
    url = _url(required=True)
    events = _events()
    description = _description()


class WebhookEndpointChange(Strict):
    """The fields to change; a field left out keeps its value."""

    url = _url(required=False)
    events = _events()
    description = _description()
    enabled = JsonBoolean(
        metadata={
            "description": "`false` turns deliveries off (pending ones wait); `true` turns "
            "them back on, whatever turned them off, and the waiting deliveries resume."
        }
    )


class WebhookEndpointOut(Schema):
    id = fields.String(metadata={"description": "`whe_…`"})
    url = fields.String()
    events = fields.List(
        fields.String(), allow_none=True, metadata={"description": "`null`: every type"}
    )
    description = fields.String()
    enabled = fields.Boolean()
    disabled_reason = fields.String(
        allow_none=True,
        metadata={
            "enum": ["merchant", "gone", "failing", None],
            "description": "Why it is off: turned off by the merchant, it answered 410 Gone, "
            "or every delivery to it failed for five days.",
        },
    )
    disabled_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    secret_rotates_until = fields.DateTime(
        allow_none=True,
        metadata={
            "description": "After a rotation: until when the previous secret still signs "
            "beside the new one (each delivery carries both signatures)."
        },
    )


class WebhookEndpointWithSecretOut(WebhookEndpointOut):
    secret = fields.String(
        metadata={
            "description": "The `whsec_` signing secret (Standard Webhooks). Shown in this "
            "answer only: keep it now."
        }
    )


class WebhookAttemptEventOut(Schema):
    id = fields.String(metadata={"description": "`evt_…`, the `webhook-id` header"})
    type = fields.String()


class WebhookAttemptOut(Schema):
    attempted_at = fields.DateTime()
    event = fields.Nested(WebhookAttemptEventOut)
    status_code = fields.Integer(
        allow_none=True, metadata={"description": "The HTTP status answered; null if none came"}
    )
    duration_ms = fields.Integer()
    error = fields.String(allow_none=True, metadata={"description": "Why it failed, briefly"})
    succeeded = fields.Boolean()
    delivery_status = fields.String(
        metadata={
            "enum": ["pending", "succeeded", "failed"],
            "description": "Where the event's delivery to this endpoint stands now",
        }
    )


class RedeliverIn(Strict):
    endpoint = fields.String(
        validate=validate.Length(min=1, max=100),
        metadata={
            "description": "`whe_…`: only this endpoint (enabled and subscribed to the event's "
            "type); left out, every enabled endpoint that would hear the event."
        },
    )


class QueuedDeliveryOut(Schema):
    endpoint = fields.String(metadata={"description": "`whe_…`"})
    event = fields.String(metadata={"description": "`evt_…`"})
    status = fields.String(metadata={"enum": ["pending"]})
    next_attempt_at = fields.DateTime()


class QueuedDeliveriesOut(Schema):
    data = fields.List(fields.Nested(QueuedDeliveryOut))


class WebhookEndpointsArgs(PageArgs):
    pass


class WebhookAttemptsArgs(PageArgs):
    pass
