"""The console's settlement forms (SPEC 3.9): the day to settle, and the report's and payments'
filters (GET forms, whose values are in the URL and carry no CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, StringField
from wtforms.validators import DataRequired, Optional, Regexp

from settlement.reads import INSTRUCTION_STATUSES, RUN_KINDS

MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"


class RunForm(FlaskForm):
    business_date = DateField(_l("Business day"), validators=[DataRequired()])


class RunFilterForm(FlaskForm):
    class Meta:
        csrf = False

    kind = SelectField(
        _l("Kind"),
        validators=[Optional()],
        choices=[("", _l("Any")), *((kind, kind) for kind in RUN_KINDS)],
    )


class MonthForm(FlaskForm):
    class Meta:
        csrf = False

    month = StringField(
        _l("Month"),
        validators=[DataRequired(), Regexp(MONTH_PATTERN, message=_l("A month as YYYY-MM."))],
        render_kw={"placeholder": "2026-10", "inputmode": "numeric", "size": 8},
    )


class PaymentFilterForm(FlaskForm):
    class Meta:
        csrf = False

    status = SelectField(
        _l("Status"),
        validators=[Optional()],
        choices=[("", _l("Any")), *((status, status) for status in INSTRUCTION_STATUSES)],
    )
    month = StringField(
        _l("Month"),
        validators=[Optional(), Regexp(MONTH_PATTERN, message=_l("A month as YYYY-MM."))],
        render_kw={"placeholder": "2026-10", "size": 8},
    )
