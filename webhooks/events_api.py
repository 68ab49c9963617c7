"""The events API (SPEC 3.6): a merchant lists and fetches the events it hears, as its endpoints
receive them, for 30 days (as Stripe's events API does). Thin: validate, read, serialise."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE

from coalition import clock
from coalition.extensions import db
from coalition.web.access import principal, require
from coalition.web.api import blueprint, page_schema, paginate
from webhooks import events_reads, events_schemas

bp = blueprint("events", __name__, "Events: what a merchant's webhook endpoints receive")


def _merchant_id() -> int:
    merchant_id = principal().merchant_id
    if merchant_id is None:  # `require` lets only merchant tokens in
        raise AssertionError("an events route ran without a merchant")
    return merchant_id


@bp.route("/events", methods=["GET"])
@require("webhooks:write")
# A mistyped filter must not silently list everything: unknown query parameters are refused.
@bp.arguments(events_schemas.EventQuerySchema, location="query", unknown=RAISE)
@bp.response(200, page_schema(events_schemas.EventOut, "EventPage"))
def list_events(query: dict[str, Any]) -> Any:
    """This merchant's events of the last 30 days, newest first, each as its endpoints receive
    it: filters `type` (repeatable), `since` (inclusive), `until` (exclusive);
    cursor-paginated. Whether or not any endpoint was registered to hear them."""
    statement = events_reads.events_of(
        _merchant_id(),
        clock.utcnow(),
        types=query.get("type") or (),
        since=query.get("since"),
        until=query.get("until"),
    )
    return paginate(statement, events_reads.id_column, query, events_reads.envelope)


@bp.route("/events/<event_id>", methods=["GET"])
@require("webhooks:write")
@bp.response(200, events_schemas.EventOut)
@bp.alt_response(404, description="No such event of this merchant's in 30 days (`not_found`).")
def get_event(event_id: str) -> Any:
    """One of this merchant's events of the last 30 days. Another merchant's is `404`, as one
    that never was."""
    return events_reads.event_of(db.session(), _merchant_id(), event_id, clock.utcnow())
