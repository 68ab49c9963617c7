"""The segment form of both faces (the portal's `/portal/segments`, the console's
`/ops/segments`): a name and the definition's criteria as plain fields, each optional. Two
buttons: "Count" shows the live count without saving, "Save" saves. Works without JavaScript.
`definition_of` turns the fields into the document the API takes (decision 303)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DecimalField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from coalition.members.attributes import INTERESTS, REGIONS
from coalition.segments.definitions import MAX_AGE, MAX_COUNT, MAX_DAYS


def _days(label: Any) -> IntegerField:
    return IntegerField(label, validators=[Optional(), NumberRange(1, MAX_DAYS)])


def _count(label: Any, low: int, high: int) -> IntegerField:
    return IntegerField(label, validators=[Optional(), NumberRange(low, high)])


class SegmentForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    recency_days = _days(_l("Bought within the last (days)"))
    lapsed_days = _days(_l("Nothing bought for (days), having bought before"))
    frequency_days = _days(_l("Purchases counted over the last (days)"))
    frequency_min = _count(_l("At least this many purchases"), 0, MAX_COUNT)
    frequency_max = _count(_l("At most this many purchases"), 0, MAX_COUNT)
    spend_days = _days(_l("Spend counted over the last (days)"))
    spend_unit = SelectField(
        _l("Spend in"),
        choices=[SelectChoice("money", _l("Money")), SelectChoice("points", _l("Points earned"))],
        default="money",
    )
    spend_min = DecimalField(_l("At least"), validators=[Optional(), NumberRange(min=0)])
    spend_max = DecimalField(_l("At most"), validators=[Optional(), NumberRange(min=0)])
    tiers = SelectMultipleField(_l("Tier (any of)"), validators=[Optional()])
    stores = StringField(
        _l("Bought at any of these stores (names, separated by commas)"),
        validators=[Optional(), Length(max=2000)],
    )
    partners = SelectMultipleField(_l("Bought at partners"), validators=[Optional()])
    partners_match = SelectField(
        _l("Partners"),
        choices=[SelectChoice("any", _l("Any of them")), SelectChoice("all", _l("All of them"))],
        default="any",
    )
    age_min = _count(_l("Age at least"), 0, MAX_AGE)
    age_max = _count(_l("Age at most"), 0, MAX_AGE)
    household_min = _count(_l("Household at least"), 1, 20)
    household_max = _count(_l("Household at most"), 1, 20)
    interests = SelectMultipleField(
        _l("Interests (any of)"),
        choices=[SelectChoice(slug, label) for slug, label in INTERESTS.items()],
        validators=[Optional()],
    )
    regions = SelectMultipleField(
        _l("Regions (any of)"),
        choices=[SelectChoice(slug, label) for slug, label in REGIONS.items()],
        validators=[Optional()],
    )


class DeleteSegmentForm(FlaskForm):
    pass


def _bounds(low: Any, high: Any) -> dict[str, Any] | None:
    found = {key: value for key, value in (("min", low), ("max", high)) if value is not None}
    return found or None


def _minor(value: Decimal | None, minor_units: int) -> Any:
    """Money typed in the currency's units, in minor units (a fraction of a cent stays a
    Decimal, which the definition's schema refuses)."""
    if value is None:
        return None
    minor = value * minor_units
    return int(minor) if minor == minor.to_integral_value() else minor


def definition_of(form: SegmentForm, minor_units: int, operator: bool) -> dict[str, Any]:
    """The definition document the fields say, before validation (`DefinitionIn`)."""
    found: dict[str, Any] = {
        "recency_days": form.recency_days.data,
        "lapsed_days": form.lapsed_days.data,
        "tiers": form.tiers.data or None,
        "interests": form.interests.data or None,
        "regions": form.regions.data or None,
        "age": _bounds(form.age_min.data, form.age_max.data),
        "household_size": _bounds(form.household_min.data, form.household_max.data),
    }
    if form.frequency_days.data or _bounds(form.frequency_min.data, form.frequency_max.data):
        found["frequency"] = {
            "days": form.frequency_days.data,
            **(_bounds(form.frequency_min.data, form.frequency_max.data) or {}),
        }
    low, high = form.spend_min.data, form.spend_max.data
    if form.spend_days.data or low is not None or high is not None:
        unit = form.spend_unit.data
        if unit == "money":
            low, high = _minor(low, minor_units), _minor(high, minor_units)
        else:
            low = None if low is None else _minor(low, 1)
            high = None if high is None else _minor(high, 1)
        found["spend"] = {"days": form.spend_days.data, "unit": unit, **(_bounds(low, high) or {})}
    if operator:
        if form.partners.data:
            found["partners"] = {"ids": form.partners.data, "match": form.partners_match.data}
    else:
        stores = [s.strip() for s in (form.stores.data or "").split(",") if s.strip()]
        found["stores"] = stores or None
    return {name: value for name, value in found.items() if value is not None}


def fill(form: SegmentForm, name: str, definition: dict[str, Any], minor_units: int) -> None:
    """Set the fields from a stored segment (to edit it)."""
    form.name.data = name
    form.recency_days.data = definition.get("recency_days")
    form.lapsed_days.data = definition.get("lapsed_days")
    frequency = definition.get("frequency", {})
    form.frequency_days.data = frequency.get("days")
    form.frequency_min.data = frequency.get("min")
    form.frequency_max.data = frequency.get("max")
    spend = definition.get("spend", {})
    form.spend_days.data = spend.get("days")
    form.spend_unit.data = spend.get("unit", "money")
    scale = minor_units if spend.get("unit") == "money" else 1
    for field, key in ((form.spend_min, "min"), (form.spend_max, "max")):
        field.data = None if key not in spend else Decimal(spend[key]) / scale
    form.tiers.data = definition.get("tiers", [])
    form.stores.data = ", ".join(definition.get("stores", []))
    partners = definition.get("partners", {})
    form.partners.data = partners.get("ids", [])
    form.partners_match.data = partners.get("match", "any")
    form.age_min.data = definition.get("age", {}).get("min")
    form.age_max.data = definition.get("age", {}).get("max")
    form.household_min.data = definition.get("household_size", {}).get("min")
    form.household_max.data = definition.get("household_size", {}).get("max")
    form.interests.data = definition.get("interests", [])
    form.regions.data = definition.get("regions", [])
