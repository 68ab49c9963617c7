"""Privacy's request and response bodies: consents (SPEC 3.4), the audience (3.3) and the
export. Names are unique across the API (the OpenAPI document names its components after
them)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from coalition.members.schemas import MeAttributesOut
from coalition.privacy.models import CHANNELS, PURPOSES, SOURCES
from coalition.web.api import PageArgs, Strict


class JsonBoolean(fields.Boolean):
    """A JSON `true` or `false`, nothing that merely looks like one ("yes", 1)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def _choice(description: str) -> fields.Boolean:
    return JsonBoolean(metadata={"description": description})


class ConsentsIn(Strict):
    """The purposes to set, each `true` (granted) or `false` (withdrawn); a purpose left out
    keeps its state (`{}` changes nothing)."""

    email = _choice("marketing by email")
    sms = _choice("marketing by text message")
    post = _choice("marketing by post")
    sharing = _choice("share the name and contact with partners where the member shopped")
    profiling = _choice(
        "use what the member tells about itself and where it shops to choose its offers"
    )


class ConsentStateOut(Schema):
    purpose = fields.String(metadata={"enum": list(PURPOSES)})
    granted = fields.Boolean()
    text = fields.String(metadata={"description": "the text the member agrees to, today's"})
    text_version = fields.String(metadata={"description": "today's version of the text"})
    granted_version = fields.String(
        allow_none=True, metadata={"description": "the version the member granted, if granted"}
    )
    changed_at = fields.DateTime(allow_none=True)


class ConsentRecordOut(Schema):
    purpose = fields.String(metadata={"enum": list(PURPOSES)})
    granted = fields.Boolean()
    text_version = fields.String()
    source = fields.String(metadata={"enum": list(SOURCES)})
    client_id = fields.String(
        allow_none=True, metadata={"description": "the partner app's OAuth client, for `api`"}
    )
    at = fields.DateTime()


class ConsentsOut(Schema):
    consents = fields.List(fields.Nested(ConsentStateOut))
    history = fields.List(fields.Nested(ConsentRecordOut))


class AudienceArgs(PageArgs):
    channel = fields.String(
        load_default="email",
        validate=validate.OneOf(CHANNELS),
        metadata={"description": "`email` (the default), `sms` or `post`"},
    )


class AudienceMemberOut(Schema):
    member = fields.String(metadata={"description": "the member's `mbr_` id"})
    name = fields.String(allow_none=True)
    email = fields.String(allow_none=True, metadata={"description": "for `channel=email`"})
    phone = fields.String(allow_none=True, metadata={"description": "for `channel=sms`"})


class ExportProfileOut(Schema):
    id = fields.String()
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    tier = fields.String()
    created_at = fields.DateTime()


class ExportCardOut(Schema):
    card_number = fields.String()
    status = fields.String()


class ExportBalanceOut(Schema):
    points = fields.Integer()
    debt = fields.Integer()


class ExportMerchantOut(Schema):
    id = fields.String()
    name = fields.String()


class ExportAmountOut(Schema):
    amount = fields.Integer(metadata={"description": "minor units"})
    currency = fields.String()


class ExportTransactionOut(Schema):
    id = fields.String()
    type = fields.String()
    points = fields.Integer()
    merchant = fields.Nested(ExportMerchantOut, allow_none=True)
    amount = fields.Nested(ExportAmountOut, allow_none=True)
    external_id = fields.String(allow_none=True)
    breakdown = fields.Dict(allow_none=True)
    reason = fields.String()
    occurred_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class ExportOut(Schema):
    exported_at = fields.DateTime()
    profile = fields.Nested(ExportProfileOut)
    cards = fields.List(fields.Nested(ExportCardOut))
    balance = fields.Nested(ExportBalanceOut)
    attributes = fields.Nested(MeAttributesOut)
    consents = fields.List(fields.Nested(ConsentStateOut))
    history = fields.List(fields.Nested(ConsentRecordOut))
    transactions = fields.List(fields.Nested(ExportTransactionOut))
    transactions_complete = fields.Boolean(
        metadata={"description": "false when only the newest 100,000 transactions are here"}
    )


class ErasureOut(Schema):
    id = fields.String(metadata={"description": "the erased member's `mbr_` id, now a pseudonym"})
    erased_at = fields.DateTime()
    points_written_off = fields.Integer(metadata={"description": "gone to breakage"})
    debt_left = fields.Integer(metadata={"description": "unrecoverable debt, the operator's"})
    holds_voided = fields.Integer()
