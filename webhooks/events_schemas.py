"""Schemas of the events API (SPEC 3.6): the list's filters and an event's envelope."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from coalition.web.api import PageArgs
from merchants.schemas import DayOrMoment
from webhooks.catalogue import DELIVERABLE

# TIGER_STYLE: a bound on every list; there are fewer types than this.
MAX_TYPES = 40


class EventQuerySchema(PageArgs):
    type = fields.List(
        fields.String(validate=validate.OneOf(DELIVERABLE)),
        validate=validate.Length(max=MAX_TYPES),
        metadata={"description": "only events of these types (repeat it: `type=a&type=b`)"},
    )
    since = DayOrMoment(
        metadata={
            "description": "created at or after this moment; a date (2026-11-01) is its first "
            "moment in the coalition's time zone"
        }
    )
    until = DayOrMoment(
        metadata={"description": "created before this moment; a date is its first moment"}
    )


class EventOut(Schema):
    """The envelope an endpoint receives, exactly: `data` is the API's own representation of
    what the event is about (docs/events.md)."""

    id = fields.String(required=True, metadata={"description": "`evt_…`, the `webhook-id`"})
    type = fields.String(required=True)
    created_at = fields.String(required=True, metadata={"description": "ISO 8601, UTC"})
    data = fields.Dict(required=True)
