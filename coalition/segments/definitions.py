"""A segment's definition (decision 303): a document of criteria, all of which a member must meet
(AND), each optional. Validated by `DefinitionIn` (marshmallow), then `normalise`d by the
service, which knows the owner: the stored form has only the criteria given, lists unique and
sorted, money with its currency, and partners by public id.

    recency_days      bought within the last N days
    frequency         {days, min, max}: at least `min` / at most `max` purchases in the last `days`
    spend             {days, unit, min, max}: `unit` "money" (minor units of the coalition's
                      currency) or "points" (points earned), summed over the last `days`
    tiers             the member's tier is any of these
    stores            a merchant's: bought at any of these stores (as its tills name them)
    partners          the operator's: {ids, match}: bought at `any` or `all` of these partners
    lapsed_days       bought before, and nothing for the last N days
    age               {min, max}: whole years from the birth date, today
    household_size    {min, max}
    interests         any of these (coalition.members.attributes.INTERESTS)
    regions           any of these (coalition.members.attributes.REGIONS)

A merchant's segment counts only its own purchases and ranges over its own customers; the
operator's counts every partner's. Every segment holds only members whose latest `profiling`
consent is granted (decision 304)."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from coalition.members.attributes import INTERESTS, MAX_HOUSEHOLD, MIN_HOUSEHOLD, REGIONS
from coalition.web.api import Strict
from coalition.web.fields import WholeNumber, text

MAX_DAYS = 3650
MAX_AGE = 130
MAX_LIST = 50
MAX_COUNT = 100_000
MAX_AMOUNT = 10**15
UNITS = ("money", "points")
MATCHES = ("any", "all")
CRITERIA = (
    "recency_days",
    "frequency",
    "spend",
    "tiers",
    "stores",
    "partners",
    "lapsed_days",
    "age",
    "household_size",
    "interests",
    "regions",
)


def _days(**kwargs: Any) -> WholeNumber:
    return WholeNumber(validate=validate.Range(1, MAX_DAYS), **kwargs)


def _bounded(schema: Any, data: dict[str, Any]) -> None:
    low, high = data.get("min"), data.get("max")
    if low is None and high is None:
        raise ValidationError("give min, max or both", "min")
    if low is not None and high is not None and low > high:
        raise ValidationError("must not exceed max", "min")


def _unique_list(item: fields.Field) -> fields.List:
    return fields.List(item, validate=validate.Length(1, MAX_LIST), allow_none=True)


class FrequencyIn(Strict):
    days = _days(required=True)
    min = WholeNumber(allow_none=True, validate=validate.Range(0, MAX_COUNT))
    max = WholeNumber(allow_none=True, validate=validate.Range(0, MAX_COUNT))

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        _bounded(self, data)


class SpendIn(Strict):
    days = _days(required=True)
    unit = fields.String(required=True, validate=validate.OneOf(UNITS))
    min = WholeNumber(allow_none=True, validate=validate.Range(0, MAX_AMOUNT))
    max = WholeNumber(allow_none=True, validate=validate.Range(0, MAX_AMOUNT))
    # Set by the service (the coalition's currency); a caller may state it, and must be right.
    currency = fields.String(allow_none=True, validate=validate.Length(3, 3))

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        _bounded(self, data)


class AgeIn(Strict):
    min = WholeNumber(allow_none=True, validate=validate.Range(0, MAX_AGE))
    max = WholeNumber(allow_none=True, validate=validate.Range(0, MAX_AGE))

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        _bounded(self, data)


class HouseholdIn(Strict):
    min = WholeNumber(allow_none=True, validate=validate.Range(MIN_HOUSEHOLD, MAX_HOUSEHOLD))
    max = WholeNumber(allow_none=True, validate=validate.Range(MIN_HOUSEHOLD, MAX_HOUSEHOLD))

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        _bounded(self, data)


class PartnersIn(Strict):
    ids = fields.List(
        fields.String(validate=validate.Length(1, 40)),
        required=True,
        validate=validate.Length(1, MAX_LIST),
    )
    match = fields.String(load_default="any", validate=validate.OneOf(MATCHES))


class DefinitionIn(Strict):
    """A segment's criteria, all of which a member must meet; each optional (none at all: every
    consenting customer)."""

    recency_days = _days(allow_none=True)
    frequency = fields.Nested(FrequencyIn, allow_none=True)
    spend = fields.Nested(SpendIn, allow_none=True)
    tiers = _unique_list(text(40))
    stores = _unique_list(text(100))
    partners = fields.Nested(PartnersIn, allow_none=True)
    lapsed_days = _days(allow_none=True)
    age = fields.Nested(AgeIn, allow_none=True)
    household_size = fields.Nested(HouseholdIn, allow_none=True)
    interests = _unique_list(fields.String(validate=validate.OneOf(list(INTERESTS))))
    regions = _unique_list(fields.String(validate=validate.OneOf(list(REGIONS))))


def normalise(loaded: dict[str, Any], *, operator: bool, currency: str) -> dict[str, Any]:
    """The stored form of a loaded definition, for its owner: only the criteria given, lists
    unique and sorted, ranges without null ends, money in `currency`. A criterion the owner may
    not use (`stores` for the operator, `partners` for a merchant), or money in another
    currency, is a ValidationError."""
    if operator and loaded.get("stores") is not None:
        raise ValidationError({"stores": ["the operator chooses partners, not stores"]})
    if not operator and loaded.get("partners") is not None:
        raise ValidationError({"partners": ["a merchant's segment counts its own purchases"]})
    spend = loaded.get("spend")
    if (
        spend is not None
        and spend["unit"] == "money"
        and spend.get("currency")
        not in (
            None,
            currency,
        )
    ):
        raise ValidationError({"spend": {"currency": [f"must be {currency}"]}})
    out: dict[str, Any] = {}
    for name in CRITERIA:
        value = loaded.get(name)
        if value is None:
            continue
        if isinstance(value, list):
            value = sorted(set(value))
        elif isinstance(value, dict):
            value = {key: item for key, item in value.items() if item is not None}
            if name == "spend":
                value.pop("currency", None)
                if value["unit"] == "money":
                    value["currency"] = currency
            if name == "partners":
                value["ids"] = sorted(set(value["ids"]))
        out[name] = value
    return out
