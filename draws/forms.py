"""The draws' page forms: the operator's "open a draw" and the member's "enter"."""

from __future__ import annotations

from decimal import Decimal

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateTimeLocalField,
    DecimalField,
    IntegerField,
    SelectMultipleField,
    StringField,
    widgets,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from coalition.ledger.rows import MAX_POINTS
from draws.services import MAX_ENTRIES_PER_CALL, MAX_PRIZE, MAX_WINNERS


class OpenDrawForm(FlaskForm):
    prize = StringField(
        _l("Prize"), validators=[DataRequired(_l("Name the prize.")), Length(max=MAX_PRIZE)]
    )
    entry_points = IntegerField(
        _l("Points per entry (leave empty for free entries only)"),
        validators=[Optional(), NumberRange(min=1, max=MAX_POINTS)],
    )
    closes_at = DateTimeLocalField(
        _l("Closes at (coalition time)"),
        format="%Y-%m-%dT%H:%M",
        validators=[InputRequired(_l("Give the closing time."))],
    )
    winners_count = IntegerField(
        _l("Number of winners"),
        default=1,
        validators=[InputRequired(), NumberRange(min=1, max=MAX_WINNERS)],
    )
    partners = SelectMultipleField(
        _l("Partners whose purchases earn a free entry (optional)"),
        choices=[],
        validators=[Optional()],
        option_widget=widgets.CheckboxInput(),
        widget=widgets.ListWidget(prefix_label=False),
    )
    min_amount = DecimalField(
        _l("Smallest purchase that earns a free entry"),
        places=2,
        validators=[Optional(), NumberRange(min=Decimal("0.01"))],
    )


class EnterDrawForm(FlaskForm):
    count = IntegerField(
        _l("Entries"),
        default=1,
        validators=[InputRequired(), NumberRange(min=1, max=MAX_ENTRIES_PER_CALL)],
    )


class CloseDrawForm(FlaskForm):
    """The "close now" button: its CSRF token only."""
