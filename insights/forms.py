"""The insights pages' range (and, in /ops, partner) picker, read from the query string: GET
forms, so no CSRF token."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField
from wtforms.validators import Optional


class RangeForm(FlaskForm):
    class Meta:
        csrf = False

    from_ = DateField(_l("From"), validators=[Optional()], name="from")
    to = DateField(_l("To"), validators=[Optional()])


class OpsRangeForm(RangeForm):
    merchant = SelectField(_l("Partner"), validators=[Optional()], default="", choices=[])
