"""Request and response bodies of the catalogue's API (SPEC 3.3-3.5). Names are unique across
the API (the OpenAPI document names its components after them)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from coalition.web.api import PageArgs, Strict, pattern
from coalition.web.fields import MoneySchema, WholeNumber, text
from rewards.models import KINDS, ORDER_STATUSES
from rewards.services import (
    MAX_CATEGORY,
    MAX_DESCRIPTION,
    MAX_FULFILMENT_DAYS,
    MAX_NAME,
    MAX_POINTS,
    MAX_QUANTITY,
    MAX_STOCK,
)


def _moment(**kwargs: object) -> fields.AwareDateTime:
    return fields.AwareDateTime(format="iso", **kwargs)  # type: ignore[arg-type]


class CostPriceIn(MoneySchema):
    amount = WholeNumber(required=True, validate=validate.Range(min=0, max=10**12))
    currency = fields.String(
        required=True, validate=pattern("^[A-Z]{3}$", "an ISO 4217 code, such as EUR")
    )


class RewardIn(Strict):
    name = text(MAX_NAME, required=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    points = WholeNumber(required=True, validate=validate.Range(min=1, max=MAX_POINTS))
    stock = WholeNumber(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_STOCK),
        metadata={"description": "How many are left to order; `null` or left out: unlimited."},
    )
    cost_price = fields.Nested(
        CostPriceIn,
        load_default=None,
        allow_none=True,
        metadata={
            "description": "What one costs the supplier, in minor units of the coalition's "
            "currency; settlement reimburses an order at it instead of `point_value`."
        },
    )
    valid_from = _moment(load_default=None, allow_none=True)
    valid_until = _moment(load_default=None, allow_none=True)
    fulfilment_days = WholeNumber(
        required=True,
        validate=validate.Range(min=0, max=MAX_FULFILMENT_DAYS),
        metadata={
            "description": "Days the supplier promises to fulfil an order in (a voucher: to "
            "accept it); an order not fulfilled by then is cancelled and its points given back."
        },
    )
    category = text(MAX_CATEGORY, required=True)
    description = fields.String(
        load_default="",
        validate=[
            validate.Length(max=MAX_DESCRIPTION),
            # Lines are allowed (a newline), no other control character.
            pattern(r"^[^\x00-\x09\x0b-\x1f\x7f-\x9f]*$", "must not contain control characters"),
        ],
    )


class SupplierOut(Schema):
    id = fields.String(
        allow_none=True, metadata={"description": "The merchant's id; null: the operator."}
    )
    name = fields.String(allow_none=True)


class CatalogueRewardOut(Schema):
    id = fields.String()
    name = fields.String()
    kind = fields.String()
    points = fields.Integer()
    stock = fields.Integer(allow_none=True)
    valid_from = _moment(allow_none=True)
    valid_until = _moment(allow_none=True)
    fulfilment_days = fields.Integer()
    category = fields.String()
    description = fields.String()
    supplier = fields.Nested(SupplierOut)
    image_url = fields.String(allow_none=True)


class RewardOut(CatalogueRewardOut):
    cost_price = fields.Nested(MoneySchema, allow_none=True)


class CatalogueArgs(PageArgs):
    category = text(MAX_CATEGORY)
    supplier = fields.String(
        validate=[
            validate.Length(min=1, max=60),
            pattern("^(operator|mer_[A-Za-z0-9]+)$", "a merchant's id or `operator`"),
        ],
        metadata={"description": "A merchant's `mer_` id, or `operator`."},
    )
    min_points = fields.Integer(validate=validate.Range(min=0, max=MAX_POINTS))
    max_points = fields.Integer(validate=validate.Range(min=0, max=MAX_POINTS))


class OrderIn(Strict):
    reward = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=60), pattern("^rwd_[A-Za-z0-9]+$", "a reward's id")],
    )
    quantity = WholeNumber(load_default=1, validate=validate.Range(min=1, max=MAX_QUANTITY))


class OrdersArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(ORDER_STATUSES))


class OrderOut(Schema):
    id = fields.String()
    reward = fields.String()
    reward_name = fields.String()
    kind = fields.String()
    status = fields.String()
    quantity = fields.Integer()
    points = fields.Integer()
    supplier = fields.Nested(SupplierOut)
    created_at = _moment()
    due_at = _moment(
        metadata={"description": "When the order is cancelled if not fulfilled by then."}
    )
    fulfilled_at = _moment(allow_none=True)
    cancelled_at = _moment(allow_none=True)
    cancelled_by = fields.String(
        allow_none=True, metadata={"description": "`member`, or `expiry` (the nightly job)."}
    )
    voucher_accepted_at = _moment(allow_none=True)


class MemberOrderOut(OrderOut):
    voucher_code = fields.String(
        metadata={"description": "A voucher's code, to show at the supplier's till."}
    )


class SupplierOrderOut(OrderOut):
    member = fields.String(metadata={"description": "The member's `mbr_` id."})
