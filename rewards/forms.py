"""The catalogue's forms, shared by the portal's and the console's listing pages and the member
site's order button. They check what `rewards.schemas` checks, with the same bounds; what they
hold becomes the services' values through `listing_values`."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from sqlalchemy.orm import Session
from wtforms import (
    DateField,
    DecimalField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from coalition import clock, economics
from coalition.errors import CoalitionError
from rewards import images, services
from rewards.reads import RewardView, Supplier
from rewards.services import (
    MAX_CATEGORY,
    MAX_DESCRIPTION,
    MAX_FULFILMENT_DAYS,
    MAX_NAME,
    MAX_POINTS,
    MAX_QUANTITY,
    MAX_STOCK,
)


def kind_choices() -> list[SelectChoice]:
    return [
        SelectChoice("gift", _l("Gift")),
        SelectChoice("voucher", _l("Voucher")),
        SelectChoice("experience", _l("Experience")),
    ]


class RewardForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=MAX_NAME)])
    kind = SelectField(_l("Kind"), choices=kind_choices())
    points = IntegerField(
        _l("Price in points"), validators=[InputRequired(), NumberRange(min=1, max=MAX_POINTS)]
    )
    stock = IntegerField(
        _l("Stock (leave empty for unlimited)"),
        validators=[Optional(), NumberRange(min=0, max=MAX_STOCK)],
    )
    cost_price = DecimalField(
        _l("Cost price (optional)"),
        places=None,
        validators=[Optional(), NumberRange(min=0, max=10**10)],
    )
    valid_from = DateField(_l("Offered from (optional)"), validators=[Optional()])
    valid_until = DateField(_l("Offered until, inclusive (optional)"), validators=[Optional()])
    fulfilment_days = IntegerField(
        _l("Days to fulfil an order"),
        validators=[InputRequired(), NumberRange(min=0, max=MAX_FULFILMENT_DAYS)],
    )
    category = StringField(_l("Category"), validators=[DataRequired(), Length(max=MAX_CATEGORY)])
    description = TextAreaField(_l("Description"), validators=[Length(max=MAX_DESCRIPTION)])
    image = FileField(_l("Image (PNG, JPEG or WebP, at most 2 MB)"))


class OrderForm(FlaskForm):
    # The form's own idempotency key: a double click, or a resent form, orders once.
    request_id = HiddenField(default=lambda: secrets.token_urlsafe(16), validators=[Length(max=64)])
    quantity = IntegerField(
        _l("Quantity"),
        default=1,
        validators=[InputRequired(), NumberRange(min=1, max=MAX_QUANTITY)],
    )


class ButtonForm(FlaskForm):
    """A button's form: only its CSRF token."""


class VoucherForm(FlaskForm):
    code = StringField(
        _l("Voucher code"),
        validators=[DataRequired(), Length(max=40)],
        render_kw={"autocomplete": "off"},
    )


def _day_start(day: date, zone: str) -> datetime:
    """The first instant of `day` in the coalition's zone, in UTC."""
    return clock.end_of_business_date(day - timedelta(days=1), zone)


def listing_values(form: RewardForm, currency: str, zone: str) -> dict[str, Any]:
    """The services' values of a filled form: dates as the coalition's days (from the start of
    the first to the end of the last), the cost price in minor units."""
    cost = form.cost_price.data
    cost_price = None
    if cost is not None:
        minor = Decimal(cost).scaleb(economics.MINOR_UNIT_DIGITS[currency])
        cost_price = {"amount": int(minor.to_integral_value()), "currency": currency}
    until = form.valid_until.data
    return {
        "name": form.name.data,
        "kind": form.kind.data,
        "points": form.points.data,
        "stock": form.stock.data,
        "cost_price": cost_price,
        "valid_from": None
        if form.valid_from.data is None
        else _day_start(form.valid_from.data, zone),
        "valid_until": None if until is None else clock.end_of_business_date(until, zone),
        "fulfilment_days": form.fulfilment_days.data,
        "category": form.category.data,
        "description": form.description.data or "",
    }


def fill(form: RewardForm, reward: Any, zone: str) -> None:
    """A form showing a listing as it is (for editing)."""
    form.name.data = reward.name
    form.kind.data = reward.kind
    form.points.data = reward.points
    form.stock.data = reward.stock
    form.cost_price.data = reward.cost_price_decimal()
    local = ZoneInfo(zone)
    form.valid_from.data = (
        None if reward.valid_from is None else reward.valid_from.astimezone(local).date()
    )
    form.valid_until.data = (
        None
        if reward.valid_until is None
        else (reward.valid_until.astimezone(local) - timedelta(microseconds=1)).date()
    )
    form.fulfilment_days.data = reward.fulfilment_days
    form.category.data = reward.category
    form.description.data = reward.description


def save_listing(
    session: Session, supplier: Supplier, form: RewardForm, reward_id: str | None, now: datetime
) -> RewardView | None:
    """List (no `reward_id`) or change a listing from a validated form, and give it the uploaded
    image if there is one. None, with the refusal on the form's fields, when the service
    refuses; the caller then rolls back and shows the form again."""
    zone = current_app.config["COALITION_TIMEZONE"]
    currency = economics.terms_at(now, session=session).currency
    values = listing_values(form, currency, zone)
    upload = form.image.data
    try:
        if reward_id is None:
            view = services.create_reward(session, supplier, values, now)
        else:
            view = services.update_reward(session, supplier, reward_id, values, now)
        if upload is not None and bool(getattr(upload, "filename", None)):
            # One byte past the limit is enough to refuse it, without reading a huge upload.
            data = upload.read(images.MAX_BYTES + 1)
            view = services.set_image(session, supplier, view.id, data, now)
    except CoalitionError as refusal:
        if refusal.status == 404:
            raise
        errors = refusal.extra.get("errors") or {}
        placed = False
        for name, messages in errors.items():
            field = getattr(form, name, None)
            if field is not None:
                field.errors = [*field.errors, *messages]
                placed = True
        if not placed:
            form.name.errors = [*form.name.errors, refusal.detail]
        return None
    return view
