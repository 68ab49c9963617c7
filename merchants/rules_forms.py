"""The portal's earn-rules forms and the operator's budget form. The rules form is turned into the
API's document and validated by the same schema (`merchants.rules_schemas.EarnRulesIn`), so the
portal and `PUT /api/v1/earn-rules` accept and refuse exactly the same rules; the preview's
basket is read into the shape of a purchase (`PurchaseSchema`'s)."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import marshmallow
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from coalition.ledger.rows import MAX_POINTS
from merchants.earning import KINDS
from merchants.rules_schemas import MAX_CONTROL_PERCENT, MAX_LAPSED_DAYS, EarnRulesIn

MAX_JSON = 50_000
MAX_PREVIEW_ITEMS = 50


class RulesForm(FlaskForm):
    base_rate = StringField(
        _l("Base rate (points per currency unit)"),
        validators=[DataRequired(_l("Enter a base rate, such as 1.5.")), Length(max=20)],
    )
    category_multipliers = TextAreaField(
        _l("Category multipliers, one per line: category = multiplier"),
        validators=[Optional(), Length(max=MAX_JSON)],
    )
    max_points_per_purchase = IntegerField(
        _l("Most points per purchase from your shop (optional)"),
        validators=[Optional(), NumberRange(min=1, max=MAX_POINTS)],
    )
    campaigns = TextAreaField(_l("Campaigns (JSON)"), validators=[Optional(), Length(max=MAX_JSON)])
    stamp_cards = TextAreaField(
        _l("Stamp cards (JSON)"), validators=[Optional(), Length(max=MAX_JSON)]
    )

    def fill(self, document: dict[str, Any]) -> None:
        """The form showing a stored rules document."""
        self.base_rate.data = document["base_rate"]
        self.category_multipliers.data = "\n".join(
            f"{name} = {value}" for name, value in document["category_multipliers"].items()
        )
        self.max_points_per_purchase.data = document["max_points_per_purchase"]
        self.campaigns.data = json.dumps(document["campaigns"], indent=2)
        self.stamp_cards.data = json.dumps(document["stamp_cards"], indent=2)

    def document(self) -> dict[str, Any] | None:
        """The rules the form says, validated by the API's schema; None, with the errors on the
        fields, when they are not valid."""
        raw: dict[str, Any] = {
            "base_rate": (self.base_rate.data or "").strip(),
            "max_points_per_purchase": self.max_points_per_purchase.data,
        }
        multipliers: dict[str, str] = {}
        for number, line in enumerate((self.category_multipliers.data or "").splitlines(), 1):
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip() or not value.strip():
                self.category_multipliers.errors = [
                    _("Line %(n)s: write category = multiplier, such as coffee = 2.", n=number)
                ]
                return None
            multipliers[name.strip()] = value.strip()
        raw["category_multipliers"] = multipliers
        for name in ("campaigns", "stamp_cards"):
            text = (getattr(self, name).data or "").strip()
            try:
                # Numbers are read as decimals, never floats; the schema wants strings anyway.
                raw[name] = json.loads(text, parse_float=Decimal) if text else []
            except ValueError:
                getattr(self, name).errors = [_("This is not valid JSON.")]
                return None
        try:
            return EarnRulesIn().load(raw)
        except marshmallow.ValidationError as error:
            messages = error.normalized_messages()
            for name, problems in messages.items():
                field = getattr(self, str(name), None) or self.base_rate
                field.errors = [
                    describe(
                        {name: problems}
                        if field is self.base_rate and name != "base_rate"
                        else problems
                    )
                ]
            return None


def describe(problems: Any) -> str:
    """Marshmallow's nested messages as one line: `campaigns.0.ends_at: must be after
    starts_at`."""
    return "; ".join(
        f"{'.'.join(path)}: {message}" if path else message for path, message in _flat(problems)
    )


def _flat(problems: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    if isinstance(problems, dict):
        return [
            found
            for key, inner in problems.items()
            for found in _flat(inner, path if key == "_schema" else (*path, str(key)))
        ]
    if isinstance(problems, list):
        return [found for inner in problems for found in _flat(inner, path)]
    return [(path, str(problems))]


MOMENT = "%Y-%m-%dT%H:%M"
KIND_LABELS = {
    "standard": _l("Standard"),
    "birthday": _l("Birthday (within 7 days of the member's birthday)"),
    "win_back": _l("Win-back (first purchase after a lapse)"),
}


def _kinds() -> list[SelectChoice]:
    return [SelectChoice(kind, KIND_LABELS[kind]) for kind in KINDS]


def _list(text: str | None) -> list[str] | None:
    """A comma-separated list of names; None when empty."""
    names = [name.strip() for name in (text or "").split(",") if name.strip()]
    return names or None


class CampaignForm(FlaskForm):
    """One campaign, added to the rules in force (or replacing the one of its name): the
    targeting fields one by one. Validated by the API's schema with the rest of the rules."""

    name = StringField(
        _l("Name"), validators=[DataRequired(_l("Name the campaign.")), Length(max=100)]
    )
    multiplier = StringField(
        _l("Multiplier, such as 2"),
        validators=[DataRequired(_l("Enter a multiplier, such as 2.")), Length(max=20)],
    )
    starts_at = DateTimeLocalField(
        _l("Starts at (coalition time)"),
        format=MOMENT,
        validators=[InputRequired(_l("Give the start."))],
    )
    ends_at = DateTimeLocalField(
        _l("Ends at (coalition time)"),
        format=MOMENT,
        validators=[InputRequired(_l("Give the end."))],
    )
    kind = SelectField(_l("Kind"), choices=_kinds, default="standard")
    lapsed_days = IntegerField(
        _l("Win-back: days without a purchase here"),
        validators=[Optional(), NumberRange(min=1, max=MAX_LAPSED_DAYS)],
    )
    segment = SelectField(_l("Segment (optional)"), choices=[], validate_choice=True)
    regions = StringField(
        _l("Regions, comma-separated (optional)"), validators=[Optional(), Length(max=2000)]
    )
    categories = StringField(
        _l("Categories, comma-separated (optional)"), validators=[Optional(), Length(max=2000)]
    )
    stores = StringField(
        _l("Stores, comma-separated (optional: all)"), validators=[Optional(), Length(max=2000)]
    )
    pilot_stores = StringField(
        _l("Pilot stores, comma-separated (optional)"), validators=[Optional(), Length(max=2000)]
    )
    pilot_until = DateTimeLocalField(
        _l("Pilot until (coalition time)"), format=MOMENT, validators=[Optional()]
    )
    control_percent = IntegerField(
        _l("Control group, percent of targeted members held out (0 to 50)"),
        default=0,
        validators=[Optional(), NumberRange(min=0, max=MAX_CONTROL_PERCENT)],
    )

    def campaign(self, zone: ZoneInfo) -> dict[str, Any]:
        """The campaign as the rules document's JSON would say it."""

        def moment(value: Any) -> str:
            return value.replace(tzinfo=zone).isoformat()

        pilot_stores = _list(self.pilot_stores.data)
        pilot = None
        if pilot_stores or self.pilot_until.data:
            pilot = {
                "stores": pilot_stores or [],
                "until": moment(self.pilot_until.data) if self.pilot_until.data else None,
            }
        return {
            "name": (self.name.data or "").strip(),
            "multiplier": (self.multiplier.data or "").strip(),
            "starts_at": moment(self.starts_at.data),
            "ends_at": moment(self.ends_at.data),
            "categories": _list(self.categories.data),
            "stores": _list(self.stores.data),
            "kind": self.kind.data,
            "segment": self.segment.data or None,
            "regions": _list(self.regions.data),
            "lapsed_days": self.lapsed_days.data,
            "pilot": pilot,
            "control_percent": self.control_percent.data or 0,
        }

    def document(self, stored: dict[str, Any], zone: ZoneInfo) -> dict[str, Any] | None:
        """The rules `stored` with this campaign added (or in place of the one of its name),
        validated by the API's schema; None, with the errors on the fields, when not valid."""
        campaign = self.campaign(zone)
        campaigns = [c for c in stored["campaigns"] if c["name"] != campaign["name"]]
        index = len(campaigns)
        raw = {**stored, "campaigns": [*campaigns, campaign]}
        try:
            return EarnRulesIn().load(raw)
        except marshmallow.ValidationError as error:
            self.show(error.normalized_messages(), index)
            return None

    def show(self, messages: dict[str, Any], index: int) -> None:
        """Problems of the rules document on this form's fields (its campaign is `index`)."""
        mine = messages.get("campaigns", {})
        mine = mine.get(index, mine.get(str(index))) if isinstance(mine, dict) else None
        if not isinstance(mine, dict):
            self.name.errors = [describe(messages)]
            return
        for key, problems in mine.items():
            target = {"pilot": self.pilot_stores, "_schema": self.name}.get(str(key))
            field = target or getattr(self, str(key), None) or self.name
            field.errors = [*field.errors, describe(problems)]


class PreviewForm(FlaskForm):
    """A sample basket (a GET form: it changes nothing)."""

    class Meta:
        csrf = False

    amount = StringField(
        _l("Amount of the basket, such as 20.00"),
        validators=[DataRequired(_l("Enter an amount.")), Length(max=20)],
    )
    items = TextAreaField(
        _l("Items, one per line: category amount [quantity], such as coffee 12.00 3"),
        validators=[Optional(), Length(max=5000)],
    )
    store = StringField(_l("Store (optional)"), validators=[Optional(), Length(max=100)])
    tier = SelectField(_l("Member's tier"), choices=[], validate_choice=True)

    def basket(self, minor_units: int) -> dict[str, Any] | None:
        """The basket as a purchase (`amount` and items in minor units); None, with errors on
        the fields, when it cannot be read."""
        amount = _minor(self.amount.data, minor_units)
        if amount is None or amount < 1:
            self.amount.errors = [_("Enter an amount such as 20.00.")]
            return None
        items: list[dict[str, Any]] = []
        lines = [line for line in (self.items.data or "").splitlines() if line.strip()]
        if len(lines) > MAX_PREVIEW_ITEMS:
            self.items.errors = [_("At most %(n)s items.", n=MAX_PREVIEW_ITEMS)]
            return None
        for number, line in enumerate(lines, 1):
            words = line.replace(",", " ").split()
            quantity = words[2] if len(words) > 2 else "1"
            line_amount = _minor(words[1], minor_units) if len(words) in (2, 3) else None
            if line_amount is None or not quantity.isdigit() or int(quantity) < 1:
                self.items.errors = [
                    _(
                        "Line %(n)s: write category amount [quantity], such as coffee 12.00 3.",
                        n=number,
                    )
                ]
                return None
            items.append(
                {
                    "sku": words[0],
                    "category": words[0],
                    "amount": line_amount,
                    "quantity": int(quantity),
                }
            )
        if items and sum(i["amount"] for i in items) != amount:
            self.items.errors = [_("The items' amounts must add up to the basket's amount.")]
            return None
        store = (self.store.data or "").strip() or None
        return {"amount": amount, "items": items, "store": store}


def _minor(text: str | None, minor_units: int) -> int | None:
    try:
        value = Decimal((text or "").strip()) * minor_units
    except InvalidOperation:
        return None
    if not value.is_finite() or value != value.to_integral_value() or value > 10**11:
        return None
    return int(value)


class BudgetForm(FlaskForm):
    monthly_issuance_cap = IntegerField(
        _l("Monthly issuance cap (merchant-funded points; empty: no cap)"),
        validators=[Optional(), NumberRange(min=0, max=MAX_POINTS)],
    )
