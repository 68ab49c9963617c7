"""Schemas of a merchant's earn rules (SPEC 2, Earn rules; `GET`/`PUT /api/v1/earn-rules`) and
of the operator's issuance cap (SPEC 2, Budgets). The rules are refused field by field (422
`validation_error`) before anything is written; the portal's form loads its document through
the same `EarnRulesIn`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from coalition.ledger.rows import MAX_POINTS
from coalition.web.api import Strict
from coalition.web.fields import WholeNumber, text
from merchants.earning import KINDS

# Bounds (TIGER_STYLE: a limit on everything).
MAX_MULTIPLIER = Decimal(10)
MAX_CATEGORIES = 100
MAX_CAMPAIGNS = 50
MAX_STAMP_CARDS = 20
MAX_NAMES = 100  # categories or stores a campaign names
MAX_STAMPS = 1000  # items a stamp card asks for
MAX_STAMP_REWARD = 1_000_000
MAX_LAPSED_DAYS = 3650  # a win-back campaign's lapse: ten years at most
MAX_CONTROL_PERCENT = 50
# Four decimal places at most: `merchants.base_rate` keeps four, and the earn arithmetic stays
# exact (merchants.earning.PRECISION).
RATE = re.compile(r"^[0-9]{1,6}(\.[0-9]{1,4})?$")  # `$`: JSON Schema's end; Python: fullmatch


class Rate(fields.String):
    """An exact decimal in a JSON string (`"1.25"`), at most four decimal places; never a JSON
    number, which a float would carry."""

    default_error_messages = {
        "decimal": 'must be a decimal in a string with at most 4 decimal places, such as "1.25"'
    }

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"pattern": RATE.pattern, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or not RATE.fullmatch(value):
            raise self.make_error("decimal")
        return value


def _between(low: Decimal, high: Decimal, *, low_open: bool = False) -> Any:
    def check(value: str) -> None:
        number = Decimal(value)
        if (number <= low if low_open else number < low) or number > high:
            above = "greater than" if low_open else "at least"
            raise ValidationError(f"must be {above} {low} and at most {high}")

    return check


# A campaign's dates: any time a merchant could mean (and no date at the calendar's edge, whose
# offset would overflow on the way to UTC).
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def _in_range(value: datetime) -> None:
    try:
        inside = EARLIEST <= value <= LATEST
    except OverflowError:
        inside = False
    if not inside:
        raise ValidationError("must be between 2000 and 2100")


def _when(**kwargs: Any) -> fields.AwareDateTime:
    return fields.AwareDateTime(format="iso", validate=_in_range, **kwargs)


def _names(maximum: int) -> fields.List:
    return fields.List(text(), validate=validate.Length(min=1, max=maximum), allow_none=True)


class PilotIn(Strict):
    stores = fields.List(text(), required=True, validate=validate.Length(min=1, max=MAX_NAMES))
    until = _when(required=True, metadata={"description": "from then on, all its stores"})


class CampaignIn(Strict):
    name = text(required=True)
    multiplier = Rate(
        required=True,
        validate=_between(Decimal(1), MAX_MULTIPLIER, low_open=True),
        metadata={"description": "the campaign's points are base x (multiplier - 1)"},
    )
    starts_at = _when(required=True)
    ends_at = _when(required=True, metadata={"description": "exclusive"})
    categories = _names(MAX_NAMES)
    stores = _names(MAX_NAMES)
    kind = fields.String(
        validate=validate.OneOf(KINDS),
        load_default="standard",
        metadata={
            "description": "standard; birthday: a purchase within 7 days of the member's"
            " birthday; win_back: the first purchase here after `lapsed_days` without one"
        },
    )
    segment = fields.String(
        allow_none=True,
        validate=validate.Length(min=1, max=40),
        metadata={"description": "the public id of one of your segments: only its members"},
    )
    regions = _names(MAX_NAMES)
    lapsed_days = WholeNumber(
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_LAPSED_DAYS),
        metadata={"description": "win_back only: days without a purchase here"},
    )
    pilot = fields.Nested(
        PilotIn,
        allow_none=True,
        metadata={"description": "only at the pilot's stores until `until`, then at all"},
    )
    control_percent = WholeNumber(
        validate=validate.Range(min=0, max=MAX_CONTROL_PERCENT),
        load_default=0,
        metadata={"description": "the share of targeted members held out, without the bonus"},
    )

    @validates_schema
    def _ends_after_it_starts(self, campaign: dict[str, Any], **_: Any) -> None:
        starts, ends = campaign.get("starts_at"), campaign.get("ends_at")
        if starts is not None and ends is not None and ends <= starts:
            raise ValidationError("must be after starts_at", "ends_at")

    @validates_schema
    def _targeting_fits(self, campaign: dict[str, Any], **_: Any) -> None:
        kind = campaign.get("kind", "standard")
        if kind == "win_back" and campaign.get("lapsed_days") is None:
            raise ValidationError("a win_back campaign needs lapsed_days", "lapsed_days")
        if kind != "win_back" and campaign.get("lapsed_days") is not None:
            raise ValidationError("only a win_back campaign has lapsed_days", "lapsed_days")
        targeted = kind != "standard" or campaign.get("segment") or campaign.get("regions")
        if campaign.get("control_percent") and not targeted:
            # (decision 312) a control group is drawn from the members a campaign targets.
            raise ValidationError(
                "only a campaign that targets members (a segment, regions, birthday or"
                " win_back) has a control group",
                "control_percent",
            )
        pilot = campaign.get("pilot")
        if not pilot:
            return
        stores = campaign.get("stores")
        if stores and not set(pilot["stores"]) <= set(stores):
            raise ValidationError("the pilot's stores must be among the campaign's", "pilot")
        starts, ends = campaign.get("starts_at"), campaign.get("ends_at")
        if starts is not None and ends is not None and not starts < pilot["until"] < ends:
            raise ValidationError("the pilot must end after starts_at and before ends_at", "pilot")


class StampCardIn(Strict):
    name = text(required=True)
    category = text(required=True)
    buy = WholeNumber(required=True, validate=validate.Range(min=1, max=MAX_STAMPS))
    reward = WholeNumber(required=True, validate=validate.Range(min=1, max=MAX_STAMP_REWARD))


def _unique_names(field: str) -> Any:
    def check(entries: list[dict[str, Any]]) -> None:
        names = [entry["name"] for entry in entries]
        if len(set(names)) != len(names):
            raise ValidationError(f"{field} names must be unique")

    return check


class EarnRulesIn(Strict):
    """A merchant's earn rules (SPEC 2). `base_rate` is points per currency unit, within the
    operator's earn-rate bounds; a category multiplier of 0 earns nothing on that category.
    Campaign names are unique, as are stamp card names; a campaign ends after it starts."""

    base_rate = Rate(required=True, validate=_between(Decimal(0), Decimal(10**6), low_open=True))
    category_multipliers = fields.Dict(
        keys=text(),
        values=Rate(validate=_between(Decimal(0), MAX_MULTIPLIER)),
        validate=validate.Length(max=MAX_CATEGORIES),
        load_default=dict,
    )
    campaigns = fields.List(
        fields.Nested(CampaignIn),
        validate=[validate.Length(max=MAX_CAMPAIGNS), _unique_names("campaign")],
        load_default=list,
    )
    max_points_per_purchase = WholeNumber(
        validate=validate.Range(min=1, max=MAX_POINTS),
        allow_none=True,
        load_default=None,
        metadata={"description": "caps the merchant-funded points (base, campaign, stamp)"},
    )
    stamp_cards = fields.List(
        fields.Nested(StampCardIn),
        validate=[validate.Length(max=MAX_STAMP_CARDS), _unique_names("stamp card")],
        load_default=list,
    )


class PilotOut(Schema):
    stores = fields.List(fields.String(), required=True)
    until = fields.String(required=True)


class CampaignOut(Schema):
    name = fields.String(required=True)
    multiplier = fields.String(required=True)
    starts_at = fields.String(required=True)
    ends_at = fields.String(required=True)
    categories = fields.List(fields.String(), allow_none=True)
    stores = fields.List(fields.String(), allow_none=True)
    kind = fields.String(required=True)
    segment = fields.String(allow_none=True, required=True)
    regions = fields.List(fields.String(), allow_none=True, required=True)
    lapsed_days = fields.Integer(allow_none=True, required=True)
    pilot = fields.Nested(PilotOut, allow_none=True, required=True)
    control_percent = fields.Integer(required=True)


class StampCardOut(Schema):
    name = fields.String(required=True)
    category = fields.String(required=True)
    buy = fields.Integer(required=True)
    reward = fields.Integer(required=True)


class EarnRulesOut(Schema):
    version = fields.Integer(required=True)
    effective_from = fields.String(required=True, metadata={"description": "ISO 8601"})
    base_rate = fields.String(required=True)
    category_multipliers = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    campaigns = fields.List(fields.Nested(CampaignOut), required=True)
    max_points_per_purchase = fields.Integer(allow_none=True, required=True)
    stamp_cards = fields.List(fields.Nested(StampCardOut), required=True)


class BudgetIn(Strict):
    monthly_issuance_cap = WholeNumber(
        required=True,
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_POINTS),
        metadata={"description": "merchant-funded points per calendar month; null: no cap"},
    )


class BudgetOut(Schema):
    merchant = fields.String(required=True)
    monthly_issuance_cap = fields.Integer(allow_none=True, required=True)
    month = fields.String(required=True, metadata={"description": "the current month, YYYY-MM"})
    issued = fields.Integer(
        required=True, metadata={"description": "merchant-funded points issued this month"}
    )


class CampaignGroupOut(Schema):
    members = fields.Integer(required=True)
    buyers = fields.Integer(required=True, metadata={"description": "members who bought"})
    purchases = fields.Integer(required=True)
    sales = fields.String(required=True, metadata={"description": "a decimal, currency units"})
    points = fields.Integer(required=True)
    average_basket = fields.String(
        allow_none=True, required=True, metadata={"description": "sales / purchases"}
    )


class UpliftOut(Schema):
    sales_per_member = fields.String(
        required=True, metadata={"description": "targeted less control, currency units"}
    )
    buyer_rate_points = fields.String(
        required=True, metadata={"description": "share of buyers, targeted less control"}
    )


class CampaignReportOut(Schema):
    campaign = fields.Nested(CampaignOut, required=True)
    basis = fields.String(
        required=True,
        metadata={
            "description": "targeted_now: the members the campaign targets now, split by the"
            " control hash; exposures: the members it reached or held out at a purchase"
        },
    )
    window_start = fields.String(required=True)
    window_end = fields.String(required=True, metadata={"description": "exclusive"})
    as_of = fields.String(required=True, metadata={"description": "when the report was made"})
    currency = fields.String(required=True)
    targeted = fields.Nested(CampaignGroupOut, required=True)
    control = fields.Nested(CampaignGroupOut, required=True)
    uplift = fields.Nested(UpliftOut, allow_none=True, required=True)
