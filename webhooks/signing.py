"""What goes on the wire for one delivery (SPEC 3.6), per the Standard Webhooks specification:
the body (the event's envelope as compact, deterministic JSON) and the three headers that sign
it, made with the `standardwebhooks` library so a receiver's `Webhook(secret).verify` accepts
them. Also the endpoints' secrets themselves (`new_secret`)."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
# 24 random bytes (192 bits), inside the 24 to 64 the specification asks for.
SECRET_BYTES = 24


def new_secret() -> str:
    """A fresh endpoint secret: `whsec_` and the base64 of random bytes, shown to the merchant
    once."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def envelope(event: Mapping[str, Any]) -> dict[str, Any]:
    """An outbox event as a merchant sees it: `{"id", "type", "created_at", "data"}`, with the
    event's `evt_` id and its time in ISO 8601 UTC as the API writes times."""
    created_at: datetime = event["created_at"]
    return {
        "id": event["public_id"],
        "type": event["type"],
        "created_at": created_at.astimezone(UTC).isoformat(),
        "data": event["data"],
    }


def body(event: Mapping[str, Any]) -> bytes:
    """The request body: the envelope as compact UTF-8 JSON with sorted keys, so the same event
    is always the same bytes."""
    return json.dumps(
        envelope(event), separators=(",", ":"), sort_keys=True, ensure_ascii=False
    ).encode("utf-8")


def headers(
    event_id: str,
    payload: bytes,
    sent_at: datetime,
    secret: str,
    *,
    previous_secret: str | None = None,
) -> dict[str, str]:
    """The Standard Webhooks headers: `webhook-id` (the event's `evt_` id, the same on every
    retry and redelivery, for the receiver to deduplicate), `webhook-timestamp` (`sent_at`, the
    real time of this send, whole seconds: receivers refuse one more than five minutes off) and
    `webhook-signature`, one `v1,…` per secret: the endpoint's, and while a rotation lasts the
    previous one too, so a receiver holding either verifies."""
    text = payload.decode("utf-8")
    signatures = [Webhook(secret).sign(event_id, sent_at, text)]
    if previous_secret is not None:
        signatures.append(Webhook(previous_secret).sign(event_id, sent_at, text))
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
    }


def signing_secrets(endpoint: Mapping[str, Any], now: datetime) -> tuple[str, str | None]:
    """The endpoint's secret and, while its rotation window is open at `now`, the previous one."""
    previous = endpoint["previous_secret"]
    expires_at = endpoint["previous_secret_expires_at"]
    if previous is None or expires_at is None or expires_at <= now:
        return endpoint["secret"], None
    return endpoint["secret"], previous
