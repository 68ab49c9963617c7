"""The console's settlement forms (SPEC 3.9): the day to settle, and the report's and payments'
filters (GET forms, whose values are in the URL and carry no CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Optional, Regexp

from settlement.reads import INSTRUCTION_STATUSES, RUN_KINDS

MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"

# What the console calls the runs' and payments' kinds and states.
RUN_KIND_LABELS = {"final": _l("Final"), "provisional": _l("Provisional")}
RUN_STATUS_LABELS = {
    "queued": _l("Queued"),
    "running": _l("Running"),
    "succeeded": _l("Done"),
    "failed": _l("Failed"),
}
PAYMENT_KIND_LABELS = {
    "transfer": _l("Transfer to the merchant"),
    "invoice": _l("Invoice to the merchant"),
}
PAYMENT_STATUS_LABELS = {
    "created": _l("Waiting"),
    "submitted": _l("Sent to Stripe"),
    "succeeded": _l("Paid"),
    "failed": _l("Failed"),
}


def _choices(values: tuple[str, ...], labels: dict[str, object]) -> list[SelectChoice]:
    return [SelectChoice("", _l("Any")), *(SelectChoice(v, labels[v]) for v in values)]


class RunForm(FlaskForm):
    business_date = DateField(_l("Business day"), validators=[DataRequired()])


class RunFilterForm(FlaskForm):
    class Meta:
        csrf = False

    kind = SelectField(
        _l("Kind"),
        validators=[Optional()],
        choices=_choices(RUN_KINDS, RUN_KIND_LABELS),
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
        choices=_choices(INSTRUCTION_STATUSES, PAYMENT_STATUS_LABELS),
    )
    month = StringField(
        _l("Month"),
        validators=[Optional(), Regexp(MONTH_PATTERN, message=_l("A month as YYYY-MM."))],
        render_kw={"placeholder": "2026-10", "size": 8},
    )
