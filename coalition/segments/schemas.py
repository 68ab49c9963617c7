"""The segments API's request and response bodies. The definition's own schema, with its
criteria, is `definitions.DefinitionIn`."""

from __future__ import annotations

from marshmallow import Schema, fields

from coalition.segments.definitions import DefinitionIn
from coalition.web.api import Strict
from coalition.web.fields import text

MAX_NAME = 200


class SegmentIn(Strict):
    name = text(MAX_NAME, required=True)
    definition = fields.Nested(DefinitionIn, required=True)


class SegmentCountIn(Strict):
    definition = fields.Nested(DefinitionIn, required=True)


class SegmentOut(Schema):
    """A segment: its definition as stored (normalised: only the criteria given, lists sorted,
    money with its currency) and the members it held at `evaluated_at`."""

    id = fields.String()
    name = fields.String()
    definition = fields.Dict()
    member_count = fields.Integer()
    evaluated_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class SegmentCountOut(Schema):
    """How many members the definition holds now (only members whose latest `profiling`
    consent is granted count), and the definition as it would be stored."""

    member_count = fields.Integer()
    definition = fields.Dict()
