"""The console's fraud alert forms: dismiss (with its required reason) and confirm."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from coalition.fraud.services import MAX_REASON


class DismissAlertForm(FlaskForm):
    reason = TextAreaField(
        _l("Why is this no fraud?"),
        validators=[DataRequired(_l("Say why you dismiss it.")), Length(max=MAX_REASON)],
    )


class ConfirmAlertForm(FlaskForm):
    """A button: the CSRF token is its only field."""
