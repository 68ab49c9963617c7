"""The console's settlement forms (SPEC 3.9): the day to settle, and the report's and payments'
filters (GET forms, whose values are in the URL and carry no CSRF token); a statement line's
dispute (the portal) and its answer (the console)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp
from wtforms.widgets import HiddenInput

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


# Disputes (SPEC 3.10) -----------------------------------------------------------------------------

DISPUTE_STATUS_LABELS = {
    "open": _l("Open"),
    "resolved": _l("Resolved with a note"),
    "rejected": _l("Rejected"),
}
OUTCOME_LABELS = {
    "credit_note": _l("Credit note: the coalition owes the merchant"),
    "debit_note": _l("Debit note: the merchant owes the coalition"),
    "reject": _l("Reject the dispute"),
}
NOTE_LABELS = {"credit_note": _l("Credit note"), "debit_note": _l("Debit note")}
# An amount in major units as a person types it: up to 9 digits, and at most 3 decimals
# (the service checks the currency's own number of them).
AMOUNT_PATTERN = r"^\s*[0-9]{1,9}([.,][0-9]{1,3})?\s*$"


class DisputeForm(FlaskForm):
    """The portal's "Dispute" form of one statement line."""

    line = IntegerField(
        validators=[DataRequired(), NumberRange(min=1, max=1000)], widget=HiddenInput()
    )
    reason = TextAreaField(
        _l("Why do you dispute this line?"),
        validators=[DataRequired(), Length(max=2000)],
        render_kw={"rows": 2},
    )


class ResolveForm(FlaskForm):
    """The console's answer to a dispute."""

    outcome = RadioField(
        _l("Outcome"),
        validators=[DataRequired()],
        choices=[SelectChoice(key, label) for key, label in OUTCOME_LABELS.items()],
    )
    amount = StringField(
        _l("Amount of the note"),
        validators=[
            Optional(),
            Regexp(AMOUNT_PATTERN, message=_l("An amount such as 12.50.")),
        ],
        render_kw={"inputmode": "decimal", "size": 10},
    )
    reason = TextAreaField(
        _l("Reason (told to the merchant; required to reject)"),
        validators=[Optional(), Length(max=2000)],
        render_kw={"rows": 3},
    )
