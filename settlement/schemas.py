"""Marshmallow schemas of settlement's API (SPEC 3.5, 3.7), all of them: what each route of
`settlement.api` takes and answers. The economics (SPEC 2): what the operator may send as a
version of the terms, refused field by field (422 `validation_error`) before anything is written,
and the terms as the operator reads them, with every decimal as a string. Runs, statements,
reports and payments: their query arguments, bodies and answers."""

from __future__ import annotations

import re
from decimal import Decimal
from itertools import pairwise
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from coalition import economics
from coalition.web.api import HTTP_URL, PageArgs, Strict, pattern
from coalition.web.fields import MoneySchema, WholeNumber, text
from settlement.models import DISPUTE_STATUSES, INSTRUCTION_STATUSES, NOTE_KINDS
from settlement.statements import MONTH as MONTH_PATTERN

# Bounds (TIGER_STYLE: a limit on everything).
MAX_TIERS = 10
MAX_TIER_NAME = 40
MAX_EXPIRY_MONTHS = 120
MAX_WELCOME_BONUS = 1_000_000
# The paid membership: a year's price in minor units (Stripe charges at least about 0.50),
# its multiplier, and how many days before the end its reminder goes out.
MIN_PREMIUM_PRICE, MAX_PREMIUM_PRICE = 50, 100_000_00
MAX_PREMIUM_MULTIPLIER = Decimal(10)
MAX_REMINDER_DAYS = 90
# A velocity limit is a whole number of points, at least one (null: no limit).
MAX_POINTS_LIMIT = 1_000_000_000
# A rate or price with up to 12 digits either side of the point, no sign, no exponent.
DECIMAL = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,12})?$")
MERCHANT_ID = re.compile(r"^mer_[A-Za-z0-9]{1,60}$")
MONTH = validate.Regexp(MONTH_PATTERN, error="a month: 2026-10")
HTTPS_URL = HTTP_URL.replace("https?", "https")


# -- the economics -----------------------------------------------------------------------------


class DecimalString(fields.String):
    """An exact decimal sent as a JSON string (`"0.0125"`), never as a number: a float cannot
    hold 0.01 exactly. Loaded as the string it was sent as, once it reads as a decimal."""

    default_error_messages = {"decimal": 'must be a decimal in a string, such as "0.01"'}

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"pattern": DECIMAL.pattern, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or not DECIMAL.match(value):
            raise self.make_error("decimal")
        return value


def _positive(value: str) -> None:
    if Decimal(value) <= 0:
        raise ValidationError("must be greater than 0")


def _fee_rate(value: str) -> None:
    if not Decimal(0) <= Decimal(value) < 1:
        raise ValidationError("must be at least 0 and less than 1")


def _at_least_one(value: str) -> None:
    if Decimal(value) < 1:
        raise ValidationError("must be at least 1")


def _bounds(value: list[str]) -> None:
    if len(value) != 2:
        return  # Length says so
    low, high = (Decimal(v) for v in value)
    if low <= 0:
        raise ValidationError("the low bound must be greater than 0")
    if low > high:
        raise ValidationError("the low bound must not be above the high bound")


def _day_bounds(value: list[int]) -> None:
    if len(value) != 2:
        return  # Length says so
    shortest, longest = value
    if not 0 <= shortest <= longest <= economics.MAX_PENDING_DAYS:
        raise ValidationError(
            f"0 <= shortest <= longest <= {economics.MAX_PENDING_DAYS} days, in that order"
        )


def _ladder(tiers: list[dict[str, Any]]) -> None:
    """SPEC 2's tiers: the first qualifies from 0, each next one on strictly more spend."""
    if not tiers:
        return  # Length says so
    names = [tier["name"] for tier in tiers]
    if len(set(names)) != len(names):
        raise ValidationError("tier names must be unique")
    spends = [Decimal(tier["qualifying_spend"]) for tier in tiers]
    if spends[0] != 0:
        raise ValidationError("the first tier must qualify from a spend of 0")
    if any(later <= earlier for earlier, later in pairwise(spends)):
        raise ValidationError("qualifying spends must be strictly increasing")


class TierIn(Strict):
    name = text(MAX_TIER_NAME, required=True)
    qualifying_spend = DecimalString(required=True)
    multiplier = DecimalString(required=True, validate=_at_least_one)


def _premium_multiplier(value: str) -> None:
    if not Decimal(1) <= Decimal(value) <= MAX_PREMIUM_MULTIPLIER:
        raise ValidationError(f"must be at least 1 and at most {MAX_PREMIUM_MULTIPLIER}")


class PremiumIn(Strict):
    """The paid membership's terms: a year's price in minor units of the currency, the earn
    multiplier it gives, and the days before its end that the renewal reminder goes out."""

    price_minor = WholeNumber(
        required=True, validate=validate.Range(min=MIN_PREMIUM_PRICE, max=MAX_PREMIUM_PRICE)
    )
    multiplier = DecimalString(required=True, validate=_premium_multiplier)
    reminder_days = WholeNumber(
        required=True, validate=validate.Range(min=1, max=MAX_REMINDER_DAYS)
    )


class TermsIn(Strict):
    """The settings of SPEC 2's Economics table. A version of the coalition's terms sets every
    one; a merchant's override sets some of `issue_price`, `operator_fee_rate`,
    `expiry_months` and `earn_rate_bounds`, and only there `null` removes one of the merchant's
    earlier overrides (the merchant then has the coalition's)."""

    currency = fields.String(validate=validate.OneOf(tuple(economics.MINOR_UNIT_DIGITS)))
    point_value = DecimalString(validate=_positive)
    issue_price = DecimalString(validate=_positive, allow_none=True)
    operator_fee_rate = DecimalString(validate=_fee_rate, allow_none=True)
    funding_model = fields.String(validate=validate.OneOf(economics.FUNDING_MODELS))
    expiry_months = WholeNumber(
        validate=validate.Range(min=1, max=MAX_EXPIRY_MONTHS), allow_none=True
    )
    earn_rate_bounds = fields.List(
        DecimalString(), validate=validate.And(validate.Length(equal=2), _bounds), allow_none=True
    )
    welcome_bonus = WholeNumber(validate=validate.Range(min=0, max=MAX_WELCOME_BONUS))
    tiers = fields.List(
        fields.Nested(TierIn),
        validate=[validate.Length(min=1, max=MAX_TIERS), _ladder],
    )
    # SPEC 2, Pending points: the window a merchant may set, in days (shortest, longest). A
    # version of the coalition's terms that leaves it out keeps the one in force on its day.
    pending_days_bounds = fields.List(
        WholeNumber(), validate=validate.And(validate.Length(equal=2), _day_bounds), allow_none=True
    )
    premium = fields.Nested(
        PremiumIn,
        metadata={"description": "Optional: left out, the premium terms in force are kept."},
    )
    member_daily_points_limit = WholeNumber(
        validate=validate.Range(min=1, max=MAX_POINTS_LIMIT),
        allow_none=True,
        metadata={
            "description": "The most points one member may spend in any 24 hours, at all"
            " merchants together; null: no limit. Left out: as the day before."
        },
    )
    merchant_hourly_points_limit = WholeNumber(
        validate=validate.Range(min=1, max=MAX_POINTS_LIMIT),
        allow_none=True,
        metadata={
            "description": "The most points members may spend at one merchant in any hour;"
            " null: no limit. Left out: as the day before."
        },
    )


class EconomicsIn(Strict):
    """A version of the terms, in force from `effective_from` (a business day that has not
    begun): the coalition's, or with `merchant` that merchant's overrides."""

    effective_from = fields.Date(required=True)
    merchant = fields.String(validate=validate.Regexp(MERCHANT_ID, error="a merchant id: mer_…"))
    terms = fields.Nested(TermsIn, required=True)

    @validates_schema
    def _settings_of_its_scope(self, data: dict[str, Any], **_: Any) -> None:
        given = set(data["terms"])
        if "merchant" in data:
            why = "coalition-wide: a merchant may not override it"
            errors = {name: [why] for name in sorted(given - set(economics.MERCHANT_SETTINGS))}
        else:
            why = "a version of the coalition's terms sets every setting"
            missing = set(economics.COALITION_SETTINGS) - given - set(economics.CARRIED_SETTINGS)
            errors = {name: [why] for name in sorted(missing)}
            nulls = sorted(
                name
                for name, value in data["terms"].items()
                if value is None and name not in economics.VELOCITY_SETTINGS
            )
            errors |= {
                name: ["must be set: only a merchant's override may be null"] for name in nulls
            }
        if errors:
            raise ValidationError({"terms": errors})


class EconomicsArgs(Strict):
    date = fields.Date(metadata={"description": "The day whose terms to show (default today)."})
    merchant = fields.String(
        validate=validate.Regexp(MERCHANT_ID, error="a merchant id: mer_…"),
        metadata={"description": "Show this merchant's terms, with its overrides."},
    )


class TierOut(Schema):
    name = fields.String()
    qualifying_spend = fields.String()
    multiplier = fields.String()


class PremiumOut(Schema):
    price_minor = fields.Integer()
    multiplier = fields.String()
    reminder_days = fields.Integer()


class TermsOut(Schema):
    """Terms, or the settings a version sets; in a merchant's version `null` removes an
    override."""

    currency = fields.String()
    point_value = fields.String()
    issue_price = fields.String(allow_none=True)
    operator_fee_rate = fields.String(allow_none=True)
    funding_model = fields.String()
    expiry_months = fields.Integer(allow_none=True)
    earn_rate_bounds = fields.List(fields.String(), allow_none=True)
    welcome_bonus = fields.Integer()
    tiers = fields.List(fields.Nested(TierOut))
    pending_days_bounds = fields.List(fields.Integer(), allow_none=True)
    premium = fields.Nested(PremiumOut)
    member_daily_points_limit = fields.Integer(allow_none=True)
    merchant_hourly_points_limit = fields.Integer(allow_none=True)


class VersionOut(Schema):
    """A version as it was written: the settings it sets, from when, by whom."""

    effective_from = fields.Date()
    terms = fields.Nested(TermsOut)
    created_at = fields.DateTime()
    actor = fields.String(allow_none=True)


class OverrideOut(Schema):
    merchant = fields.String()
    versions = fields.List(fields.Nested(VersionOut))


class EconomicsOut(Schema):
    current = fields.Nested(TermsOut)
    effective_from = fields.Date()
    merchant = fields.String()
    versions = fields.List(fields.Nested(VersionOut))
    overrides = fields.List(fields.Nested(OverrideOut))


class WrittenVersionOut(VersionOut):
    merchant = fields.String()


class EconomicsChangeOut(Schema):
    version = fields.Nested(WrittenVersionOut)
    versions = fields.List(fields.Nested(VersionOut))


# -- runs, statements and reports --------------------------------------------------------------


class RunIn(Strict):
    business_date = fields.Date(required=True)


class RunListArgs(PageArgs):
    business_date = fields.Date()
    kind = fields.String(validate=validate.OneOf(("final", "provisional")))


class MonthIn(Strict):
    month = fields.String(required=True, validate=MONTH)


class MonthArgs(PageArgs):
    month = fields.String(validate=MONTH)


class FlowArgs(Schema):
    month = fields.String(required=True, validate=MONTH)


class RunOut(Schema):
    id = fields.String()
    business_date = fields.Date()
    kind = fields.String()
    status = fields.String()
    window = fields.Dict()
    currency = fields.String(allow_none=True)
    funding_model = fields.String(allow_none=True)
    totals = fields.Dict(allow_none=True)
    error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)


class RunDetailOut(RunOut):
    positions = fields.List(fields.Dict())
    flows = fields.List(fields.Dict())


class PartyOut(Schema):
    """A merchant by its id and name (or the operator: id `operator`)."""

    id = fields.String()
    name = fields.String()


class CarriedOut(Schema):
    statement = fields.String()
    month = fields.String()
    amount = fields.Nested(MoneySchema)


class StatementOut(Schema):
    """Exact amounts (`lines`, `exact_net`, `rounding`) are decimal strings in major units of
    `currency`; `opening`, `net` and `closing` are rounded to minor units, as money. `closing`
    positive: the merchant pays; `summary` says it in words."""

    id = fields.String()
    merchant = fields.Nested(PartyOut)
    month = fields.String()
    currency = fields.String()
    status = fields.String()
    issued_at = fields.String()
    summary = fields.String()
    opening = fields.Nested(MoneySchema)
    carried = fields.List(fields.Nested(CarriedOut))
    lines = fields.List(fields.Dict())
    exact_net = fields.String()
    rounding = fields.String()
    net = fields.Nested(MoneySchema)
    closing = fields.Nested(MoneySchema)
    days = fields.List(fields.Dict())
    payment = fields.Dict(allow_none=True)


class StatementListOut(Schema):
    data = fields.List(fields.Nested(StatementOut))


# -- payments ----------------------------------------------------------------------------------


class AccountLinkIn(Strict):
    return_url = fields.String(
        required=True,
        validate=[validate.Length(max=2000), pattern(HTTPS_URL, "Not a valid https URL.")],
    )
    refresh_url = fields.String(
        required=True,
        validate=[validate.Length(max=2000), pattern(HTTPS_URL, "Not a valid https URL.")],
    )


class AccountLinkOut(Schema):
    url = fields.String()
    stripe_account = fields.String()


class PaymentListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(INSTRUCTION_STATUSES))
    month = fields.String(validate=MONTH)


class PaymentOut(Schema):
    """`amount` is money (minor units); `kind` says who pays: `transfer` the operator pays the
    merchant, `invoice` the merchant pays the operator."""

    id = fields.String()
    merchant = fields.Nested(PartyOut)
    statement = fields.String()
    month = fields.String()
    kind = fields.String()
    amount = fields.Nested(MoneySchema)
    status = fields.String()
    stripe_id = fields.String(allow_none=True)
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    submitted_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


# -- disputes (SPEC 3.10) ------------------------------------------------------------------------

MAX_REASON = 2000
MAX_LINES = 1000


class DisputeIn(Strict):
    """`line` is the line's number on the statement, counting its `lines` from 1."""

    line = WholeNumber(required=True, validate=validate.Range(min=1, max=MAX_LINES))
    reason = text(MAX_REASON, required=True)


class DisputeArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(DISPUTE_STATUSES))


class ResolveIn(Strict):
    """`credit_note`: the operator owes the merchant `amount`; `debit_note`: the merchant owes
    it; both in the statement's currency, minor units, greater than 0. `reject` needs a
    `reason` and takes no amount. Refused otherwise (422 naming `amount` or `reason`)."""

    outcome = fields.String(required=True, validate=validate.OneOf((*NOTE_KINDS, "reject")))
    amount = fields.Nested(MoneySchema)
    reason = text(MAX_REASON)


class DisputeLineOut(Schema):
    number = fields.Integer()
    kind = fields.String()
    description = fields.String(allow_none=True)
    amount = fields.String(allow_none=True)


class DisputeStatementOut(Schema):
    id = fields.String()
    month = fields.String()


class NoteOut(Schema):
    kind = fields.String()
    amount = fields.Nested(MoneySchema)
    stated_in = fields.String(allow_none=True)


class ResolutionOut(Schema):
    outcome = fields.String()
    note = fields.Nested(NoteOut, allow_none=True)
    reason = fields.String(allow_none=True)
    resolved_at = fields.String()


class DisputeOut(Schema):
    """A dispute of one statement line. `status`: `open`, `resolved` (with a note, stated in
    the merchant's next statement: `resolution.note.stated_in`) or `rejected`."""

    id = fields.String()
    statement = fields.Nested(DisputeStatementOut)
    merchant = fields.Nested(PartyOut)
    line = fields.Nested(DisputeLineOut)
    currency = fields.String()
    reason = fields.String()
    status = fields.String()
    raised_at = fields.String()
    disputable_until = fields.String()
    resolution = fields.Nested(ResolutionOut, allow_none=True)
