"""Marshmallow schemas of the merchants' API (SPEC 3.3): the points routes, what a till may send,
refused field by field (422 `validation_error`) before anything is written, and what it gets
back (the routes serialise their results with the response schemas, which also document the
bodies; the tests load every body through them); and onboarding's, a merchant's application and
the operator's merchants and clients (SPEC 3.5)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from coalition import clock, economics
from coalition.errors import InvalidRequest
from coalition.ledger.holds import HOLD_MAX_TTL
from coalition.ledger.models import TRANSACTION_TYPES
from coalition.ledger.rows import MAX_POINTS
from coalition.oauth import clients as oauth_clients
from coalition.oauth.scopes import ALLOWED
from coalition.web.api import EMAIL, HTTP_URL, PageArgs, Strict, pattern
from coalition.web.fields import MoneySchema, WholeNumber, text
from merchants.models import MERCHANT_STATUSES

# Bounds (TIGER_STYLE: a limit on everything). A purchase of up to 10^9 euros keeps its points
# far below the ledger's own bound at the highest earn rate.
MAX_PURCHASE_MINOR = 10**11
MAX_ITEMS = 500
MAX_QUANTITY = 100_000
MAX_EXTERNAL_ID = 100
MAX_MEMBER_REF = 40  # a card number as typed, or a `mbr_` id
# A till's clock may run a little ahead of ours; a purchase from further ahead is refused, and so
# is one older than a year (a till offline that long should not earn points unseen).
CLOCK_SKEW = timedelta(minutes=5)
OLDEST_PURCHASE = timedelta(days=366)
# SPEC 3.3: up to 1,000 purchases a request.
MAX_BATCH_LINES = 1000
NDJSON = "application/x-ndjson"
DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _not_in_future_nor_too_old(value: datetime) -> None:
    now = clock.utcnow()
    try:
        future, old = value > now + CLOCK_SKEW, value < now - OLDEST_PURCHASE
    except OverflowError as exc:  # a date at the edge of the calendar with a far offset
        raise ValidationError("is out of range") from exc
    if future:
        raise ValidationError("must not be in the future")
    if old:
        raise ValidationError("must be within the last year")


def _when(**kwargs: Any) -> fields.AwareDateTime:
    """An ISO 8601 time with its offset (SPEC 3.1: UTC ISO 8601); a naive time is refused."""
    return fields.AwareDateTime(format="iso", **kwargs)


class ItemSchema(Strict):
    sku = text(required=True)
    category = text()
    amount = WholeNumber(
        required=True,
        validate=validate.Range(min=0, max=MAX_PURCHASE_MINOR),
        metadata={
            "description": "the line's total (every unit, after the line's discounts), in "
            "minor units; the items' amounts add up to the purchase's"
        },
    )
    quantity = WholeNumber(validate=validate.Range(min=1, max=MAX_QUANTITY))


class PurchaseSchema(Strict):
    member = text(
        MAX_MEMBER_REF, required=True, metadata={"description": "card number or `mbr_` id"}
    )
    amount = WholeNumber(
        required=True,
        validate=validate.Range(min=1, max=MAX_PURCHASE_MINOR),
        metadata={"description": "in minor units of `currency`"},
    )
    currency = fields.String(
        required=True,
        validate=validate.Regexp(r"[A-Z]{3}\Z", error="must be an ISO 4217 code such as EUR"),
    )
    external_id = text(
        MAX_EXTERNAL_ID,
        required=True,
        metadata={"description": "the till's receipt id; a purchase is recorded once per id"},
    )
    store = text()
    items = fields.List(
        fields.Nested(ItemSchema),
        validate=validate.Length(max=MAX_ITEMS),
        metadata={"description": "the receipt's lines; their amounts add up to `amount`"},
    )
    occurred_at = _when(validate=_not_in_future_nor_too_old)

    @validates_schema
    def _items_add_up(self, purchase: dict[str, Any], **_: Any) -> None:
        # Points will be earned per item (earn rules by category), so the lines must account
        # for exactly the amount paid: no more, no less.
        items = purchase.get("items")
        if items and "amount" in purchase:
            total = sum(item["amount"] for item in items)
            if total != purchase["amount"]:
                raise ValidationError(
                    f"the items' amounts add up to {total}, not to the purchase's amount "
                    f"{purchase['amount']}",
                    "items",
                )


# The batch's body is many purchases, an array or NDJSON, parsed line by line rather than by a
# schema (`merchants.api.batch`); OpenAPI is told its shape here.
BATCH_REQUEST_BODY = {
    "required": True,
    "description": f"Up to {MAX_BATCH_LINES} purchases: a JSON array, or NDJSON "
    "(one purchase a line).",
    "content": {
        # Any line is taken: one that is not a purchase gets its own problem in the results.
        "application/json": {
            "schema": {
                "type": "array",
                "minItems": 1,
                "items": {"description": "a purchase (see Purchase)"},
            }
        },
        NDJSON: {"schema": {"$ref": "#/components/schemas/Purchase"}},
    },
}


class RefundSchema(Strict):
    amount = WholeNumber(
        required=True,
        validate=validate.Range(min=1, max=MAX_PURCHASE_MINOR),
        metadata={"description": "refunded, in minor units of the purchase's currency"},
    )
    external_id = text(
        MAX_EXTERNAL_ID,
        required=True,
        metadata={"description": "the till's return receipt id; a refund is recorded once per id"},
    )


class RedemptionSchema(Strict):
    member = text(
        40,
        metadata={"description": "card number or `mbr_` id; not with a member token"},
    )
    code = text(16, metadata={"description": "the member's current code; not with a member token"})
    points = WholeNumber(required=True, validate=validate.Range(min=1, max=MAX_POINTS))
    external_id = text(MAX_EXTERNAL_ID, required=True)


def check_redemption_proof(redemption: dict[str, Any], *, by_member: bool) -> None:
    """A member token is itself the proof and names the member: a redemption under it sends
    neither `member` nor `code`; under a merchant token it sends both (`validation_error`)."""
    given = [field for field in ("member", "code") if field in redemption]
    if by_member and given:
        raise InvalidRequest(
            "a member token names the member and proves its presence; send neither",
            errors={field: ["not allowed with a member token"] for field in given},
        )
    missing = [field for field in ("member", "code") if field not in redemption]
    if not by_member and missing:
        raise InvalidRequest(
            "the request has invalid fields; see errors",
            errors={field: ["Missing data for required field."] for field in missing},
        )


class HoldRequestSchema(Strict):
    member = text(
        MAX_MEMBER_REF, required=True, metadata={"description": "card number or `mbr_` id"}
    )
    code = text(16, required=True)
    points = WholeNumber(required=True, validate=validate.Range(min=1, max=MAX_POINTS))
    ttl_seconds = WholeNumber(
        validate=validate.Range(min=1, max=int(HOLD_MAX_TTL.total_seconds())),
        metadata={"description": "default 900 (15 minutes), at most 7 days"},
    )


class CaptureSchema(Strict):
    points = WholeNumber(
        validate=validate.Range(min=1, max=MAX_POINTS),
        metadata={"description": "default: all the hold's points; the rest is released"},
    )


class VoidSchema(Strict):
    pass


class DayOrMoment(fields.AwareDateTime):
    """A moment with its offset, or a date as a person types it (`2026-11-01`): that day's
    first moment in the coalition's time zone (COALITION_TIMEZONE), as business days are."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, str) and DATE_ONLY.fullmatch(value):
            zone = ZoneInfo(current_app.config["COALITION_TIMEZONE"])
            try:
                moment = datetime.combine(date.fromisoformat(value), time.min, zone)
            except ValueError as exc:  # 2026-13-01
                raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from exc
        else:
            moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError as exc:  # the calendar's first or last day, with an offset
            raise ValidationError("is out of range") from exc


class TransactionQuerySchema(PageArgs):
    member = text(40, metadata={"description": "card number or `mbr_` id"})
    type = fields.String(validate=validate.OneOf(TRANSACTION_TYPES))
    since = DayOrMoment(
        metadata={
            "description": "created at or after this moment; a date (2026-11-01) is its first "
            "moment in the coalition's time zone"
        }
    )
    until = DayOrMoment(
        metadata={
            "description": "created before this moment; a date is its first moment in the "
            "coalition's time zone (until=2026-12-01 ends with the last of November)"
        }
    )


# Responses.


class MemberStateSchema(Strict):
    id = fields.String(required=True)
    balance = fields.Integer(required=True)
    tier = fields.String(required=True)


class MemberAvailableSchema(MemberStateSchema):
    available = fields.Integer(required=True)


class BreakdownSchema(Strict):
    base = fields.Integer(required=True)
    campaign = fields.Integer(required=True)
    tier = fields.Integer(required=True)
    welcome = fields.Integer(required=True)
    stamp = fields.Integer(required=True)
    premium = fields.Integer(
        required=True,
        metadata={"description": "a premium membership's extra points, operator-funded"},
    )


class EarnSchema(Strict):
    id = fields.String(required=True)
    type = fields.String(required=True)
    points = fields.Integer(required=True)
    breakdown = fields.Nested(BreakdownSchema, required=True)


class PurchaseResultSchema(Strict):
    transaction = fields.Nested(EarnSchema, required=True)
    member = fields.Nested(MemberStateSchema, required=True)


class BatchLineSchema(Strict):
    line = fields.Integer(required=True)
    status = fields.Integer(required=True)
    body = fields.Dict(
        required=True, metadata={"description": "the purchase's result, or a problem"}
    )


class BatchResultSchema(Strict):
    results = fields.List(fields.Nested(BatchLineSchema), required=True)


class RedeemSchema(Strict):
    id = fields.String(required=True)
    type = fields.String(required=True)
    points = fields.Integer(required=True)
    value = fields.Nested(MoneySchema, required=True)
    hold = fields.String(metadata={"description": "the captured hold"})


class RedemptionResultSchema(Strict):
    transaction = fields.Nested(RedeemSchema, required=True)
    member = fields.Nested(MemberStateSchema, required=True)


class CaptureResultSchema(Strict):
    transaction = fields.Nested(RedeemSchema, required=True)
    member = fields.Nested(MemberAvailableSchema, required=True)


class RefundTransactionSchema(Strict):
    id = fields.String(required=True)
    type = fields.String(required=True)
    purchase = fields.String(required=True)
    amount = fields.Nested(MoneySchema, required=True)
    points_clawed_back = fields.Integer(required=True)
    breakdown = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


class RefundResultSchema(Strict):
    points_clawed_back = fields.Integer(required=True)
    transaction = fields.Nested(RefundTransactionSchema, required=True)
    member = fields.Nested(MemberAvailableSchema, required=True)


class ReversalTransactionSchema(Strict):
    id = fields.String(required=True)
    type = fields.String(required=True)
    redemption = fields.String(required=True)
    points = fields.Integer(required=True)


class ReversalResultSchema(Strict):
    transaction = fields.Nested(ReversalTransactionSchema, required=True)
    member = fields.Nested(MemberAvailableSchema, required=True)


class HoldSchema(Strict):
    id = fields.String(required=True)
    points = fields.Integer(required=True)
    status = fields.String(required=True)
    expires_at = fields.String(metadata={"description": "ISO 8601"})


class HoldResultSchema(Strict):
    hold = fields.Nested(HoldSchema, required=True)
    member = fields.Nested(MemberAvailableSchema, required=True)


class TransactionSchema(Schema):
    id = fields.String(required=True)
    type = fields.String(required=True)
    points = fields.Integer(required=True)
    member = fields.String(required=True, metadata={"description": "the member's `mbr_` id"})
    amount = fields.Nested(MoneySchema, allow_none=True)
    external_id = fields.String(allow_none=True)
    breakdown = fields.Dict(keys=fields.String(), values=fields.Integer(), allow_none=True)
    original = fields.String(
        allow_none=True, metadata={"description": "the purchase refunded or redemption reversed"}
    )
    reason = fields.String(required=True)
    occurred_at = fields.String(allow_none=True)
    created_at = fields.String(required=True)


# Onboarding.


class ApplicationIn(Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.String(
        required=True,
        validate=[validate.Length(max=320), pattern(EMAIL, "Not a valid email address.")],
    )
    country = fields.String(
        required=True, validate=validate.Regexp(r"^[A-Z]{2}$", error="an ISO 3166 code: DE, FR")
    )
    category = fields.String(required=True, validate=validate.Length(min=1, max=80))
    website = fields.String(
        allow_none=True,
        validate=[validate.Length(max=500), pattern(f"^({HTTP_URL[1:-1]})?$", "Not a valid URL.")],
        metadata={"description": "an http(s) URL; empty, null or left out: none"},
    )
    contact_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=10, max=200)
    )


class ApplicationOut(Schema):
    id = fields.String()
    status = fields.String()


class MerchantOut(Schema):
    id = fields.String()
    name = fields.String()
    status = fields.String()
    email = fields.String(allow_none=True)
    country = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    website = fields.String(allow_none=True)
    contact_name = fields.String(allow_none=True)
    base_rate = fields.String()
    created_at = fields.DateTime()
    approved_at = fields.DateTime(allow_none=True)
    suspended_at = fields.DateTime(allow_none=True)
    refused_at = fields.DateTime(allow_none=True)
    refusal_reason = fields.String(allow_none=True)


class MerchantListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(MERCHANT_STATUSES))


class ClientIn(Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    scopes = fields.List(
        fields.String(validate=validate.OneOf(sorted(ALLOWED["merchant"]))),
        required=True,
        validate=validate.Length(min=1, max=20),
    )
    redirect_uris = fields.List(
        fields.String(validate=[validate.Length(max=500), pattern(HTTP_URL, "Not a valid URL.")]),
        load_default=list,
        validate=validate.Length(max=oauth_clients.MAX_REDIRECT_URIS),
    )


class ClientOut(Schema):
    client_id = fields.String()
    client_secret = fields.String()
    scopes = fields.List(fields.String())


class PendingWindowIn(Strict):
    """SPEC 2, Pending points: the days a purchase's points stay pending (the merchant's return
    period), 0 for none, within the operator's bounds."""

    pending_days = WholeNumber(
        required=True, validate=validate.Range(min=0, max=economics.MAX_PENDING_DAYS)
    )


class PendingWindowOut(Schema):
    pending_days = fields.Integer(metadata={"description": "the window the merchant chose"})
    bounds = fields.List(
        fields.Integer(), metadata={"description": "the operator's bounds today, in days"}
    )
    in_force = fields.Integer(
        metadata={"description": "the window a purchase recorded now gets, within the bounds"}
    )
