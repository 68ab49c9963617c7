"""The operator console's economics page (SPEC 2, 3.9): the coalition's terms in force today and
since when, the versions scheduled and past, the merchants' overrides, and a form to schedule a
new version of the coalition's terms from a business day that has not begun. The form's values
go through the API's own schema (`settlement.schemas.EconomicsIn`) and service
(`settlement.economics.set_economics`), so a page and an API call are refused alike; the
currency and the tiers are carried over from the terms in force on that day. Money page: admin
and finance only."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from marshmallow import ValidationError
from werkzeug.wrappers import Response
from wtforms import DateField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from coalition import clock
from coalition.economics import FUNDING_MODELS
from coalition.errors import CoalitionError
from coalition.extensions import db
from coalition.staff.views import current_staff, staff_required
from coalition.web import pages
from settlement import business_days, economics, schemas

bp = pages.face_blueprint("ops_economics", __name__, "/ops/economics")

# The form's fields for each of the terms' settings (the bounds take two).
FIELDS = {
    "point_value": "point_value",
    "issue_price": "issue_price",
    "operator_fee_rate": "operator_fee_rate",
    "funding_model": "funding_model",
    "expiry_months": "expiry_months",
    "earn_rate_bounds": "earn_rate_low",
    "welcome_bonus": "welcome_bonus",
    "pending_days_bounds": "pending_days_low",
    "price_minor": "premium_price_minor",
    "multiplier": "premium_multiplier",
    "reminder_days": "premium_reminder_days",
    "member_daily_points_limit": "member_daily_points_limit",
    "merchant_hourly_points_limit": "merchant_hourly_points_limit",
}


def _decimal(label: Any) -> StringField:
    return StringField(
        label, validators=[DataRequired(), Length(max=30)], render_kw={"inputmode": "decimal"}
    )


class ScheduleForm(FlaskForm):
    effective_from = DateField(_l("In force from (a business day that has not begun)"))
    point_value = _decimal(_l("Point value (what a point is worth, in the currency)"))
    issue_price = _decimal(_l("Issue price (what an issuer pays per point)"))
    operator_fee_rate = _decimal(_l("Operator fee rate (a fraction, e.g. 0.15)"))
    funding_model = SelectField(
        _l("Funding model"),
        choices=[SelectChoice(m, m) for m in FUNDING_MODELS],
        validators=[DataRequired()],
    )
    expiry_months = IntegerField(_l("Points expire after (months)"), validators=[InputRequired()])
    earn_rate_low = _decimal(_l("Lowest base rate a merchant may set (points per unit)"))
    earn_rate_high = _decimal(_l("Highest base rate a merchant may set (points per unit)"))
    welcome_bonus = IntegerField(
        _l("Welcome bonus (points, paid by the operator)"), validators=[InputRequired()]
    )
    pending_days_low = IntegerField(
        _l("Shortest pending window a merchant may set (days)"), validators=[InputRequired()]
    )
    pending_days_high = IntegerField(
        _l("Longest pending window a merchant may set (days)"), validators=[InputRequired()]
    )
    premium_price_minor = IntegerField(
        _l("Premium membership: price of a year (in cents, e.g. 2900)"),
        validators=[InputRequired()],
    )
    premium_multiplier = _decimal(_l("Premium membership: earn multiplier (e.g. 1.5)"))
    premium_reminder_days = IntegerField(
        _l("Premium membership: renewal reminder (days before the end)"),
        validators=[InputRequired()],
    )
    # Velocity limits (coalition.fraud.velocity): empty for none.
    member_daily_points_limit = IntegerField(
        _l("Most points one member may spend in any 24 hours (empty: no limit)"),
        validators=[Optional()],
    )
    merchant_hourly_points_limit = IntegerField(
        _l("Most points spent at one merchant in any hour (empty: no limit)"),
        validators=[Optional()],
    )


def _fill(form: ScheduleForm, terms: dict[str, Any], day: date) -> None:
    form.effective_from.data = day
    for name in ("point_value", "issue_price", "operator_fee_rate", "funding_model"):
        getattr(form, name).data = terms[name]
    form.expiry_months.data = terms["expiry_months"]
    form.earn_rate_low.data, form.earn_rate_high.data = terms["earn_rate_bounds"]
    form.welcome_bonus.data = terms["welcome_bonus"]
    form.pending_days_low.data, form.pending_days_high.data = terms["pending_days_bounds"]
    form.premium_price_minor.data = terms["premium"]["price_minor"]
    form.premium_multiplier.data = terms["premium"]["multiplier"]
    form.premium_reminder_days.data = terms["premium"]["reminder_days"]
    form.member_daily_points_limit.data = terms.get("member_daily_points_limit")
    form.merchant_hourly_points_limit.data = terms.get("merchant_hourly_points_limit")


def _show(form: ScheduleForm, found: dict[str, Any], today: date, status: int = 200) -> Any:
    versions = found["versions"]
    return render_template(
        "ops/economics.html",
        form=form,
        current=found["current"],
        since=found["effective_from"],
        scheduled=[v for v in versions if v["effective_from"] > today],
        past=[v for v in reversed(versions) if v["effective_from"] <= today],
        overrides=found["overrides"],
        today=today,
    ), status


@bp.get("")
@staff_required("admin", "finance")
def index() -> Any:
    now = clock.utcnow()
    today = business_days.today(now)
    session = db.session()
    found = economics.read(session, None, None, now)
    form = ScheduleForm()
    tomorrow = today + timedelta(days=1)
    _fill(form, economics.read(session, tomorrow, None, now)["current"], tomorrow)
    return _show(form, found, today)


def _attach(form: ScheduleForm, errors: Any) -> None:
    """The schema's or the service's field errors, shown at the form's fields."""
    if not isinstance(errors, dict):
        return
    terms = errors.get("terms")
    flat = {**{k: v for k, v in errors.items() if k != "terms"}}
    if isinstance(terms, dict):
        flat |= terms
        premium = terms.get("premium")
        if isinstance(premium, dict):
            flat.pop("premium")
            flat |= premium
    for name, messages in flat.items():
        field = getattr(form, FIELDS.get(name, name), None)
        if field is None:
            continue
        if isinstance(messages, dict):
            messages = [m for ms in messages.values() for m in ms]
        field.errors = [*field.errors, *(str(m) for m in messages)]


@bp.post("")
@staff_required("admin", "finance")
def schedule() -> Any:
    now = clock.utcnow()
    today = business_days.today(now)
    session = db.session()
    form = ScheduleForm()
    found = economics.read(session, None, None, now)
    if not form.validate_on_submit() or form.effective_from.data is None:
        if form.effective_from.data is None and request.form.get("effective_from") is not None:
            form.effective_from.errors = [_("Give a day: YYYY-MM-DD.")]
        return _show(form, found, today, 422)
    day = form.effective_from.data
    carried = economics.read(session, day, None, now)["current"]
    body = {
        "effective_from": day.isoformat(),
        "terms": {
            "currency": carried["currency"],
            "tiers": carried["tiers"],
            "point_value": (form.point_value.data or "").strip(),
            "issue_price": (form.issue_price.data or "").strip(),
            "operator_fee_rate": (form.operator_fee_rate.data or "").strip(),
            "funding_model": form.funding_model.data,
            "expiry_months": form.expiry_months.data,
            "earn_rate_bounds": [
                (form.earn_rate_low.data or "").strip(),
                (form.earn_rate_high.data or "").strip(),
            ],
            "welcome_bonus": form.welcome_bonus.data,
            "pending_days_bounds": [form.pending_days_low.data, form.pending_days_high.data],
            "premium": {
                "price_minor": form.premium_price_minor.data,
                "multiplier": (form.premium_multiplier.data or "").strip(),
                "reminder_days": form.premium_reminder_days.data,
            },
            "member_daily_points_limit": form.member_daily_points_limit.data,
            "merchant_hourly_points_limit": form.merchant_hourly_points_limit.data,
        },
    }
    try:
        change = schemas.EconomicsIn().load(body)
    except ValidationError as exc:
        _attach(form, exc.messages)
        flash(_("Some values are not right: see the fields below."), "error")
        return _show(form, found, today, 422)
    staff = current_staff()
    assert staff is not None
    try:
        economics.set_economics(
            session,
            effective_from=change["effective_from"],
            settings=change["terms"],
            merchant=None,
            actor_id=f"staff:{staff.email}",
            now=now,
            actor=staff.actor,
        )
    except CoalitionError as exc:
        session.rollback()
        _attach(form, exc.extra.get("errors"))
        flash(exc.detail, "error")
        return _show(form, economics.read(session, None, None, now), today, 422)
    flash(
        _("The new terms take effect on %(day)s.", day=change["effective_from"].isoformat()),
        "success",
    )
    return _redirect()


def _redirect() -> Response:
    return redirect(url_for("ops_economics.index"), code=303)
