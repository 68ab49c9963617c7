"""The member site's forms: join, sign in, consents and erasure. Joining and signing in check
what the member API's sign-up schema checks (`schemas.MemberSignupIn`), with the same bounds, so
a member who joins here can sign in through a partner's app and the other way round."""

from __future__ import annotations

import marshmallow
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    Field,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import (
    DataRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from coalition.members.schemas import MAX_EMAIL, MAX_NAME, MAX_PASSWORD, MIN_PASSWORD
from coalition.web.api import EMAIL, plain_text


def _plain(_form: FlaskForm, field: Field) -> None:
    """The API's check of typed text: no control characters, no lone surrogates."""
    try:
        plain_text(field.data or "")
    except marshmallow.ValidationError as error:
        raise ValidationError(_l("Use letters, digits and punctuation only.")) from error


def _fits_lowered(_form: FlaskForm, field: Field) -> None:
    if field.data and len(field.data.lower()) > MAX_EMAIL:
        raise ValidationError(_l("At most %(n)s characters.", n=MAX_EMAIL))


def _email_field() -> EmailField:
    return EmailField(
        _l("Email"),
        validators=[
            DataRequired(_l("Enter your email address.")),
            Length(max=MAX_EMAIL),
            Regexp(
                EMAIL.removesuffix("$") + r"\Z", message=_l("Enter an email like name@example.org.")
            ),
            _fits_lowered,
        ],
        render_kw={"autocomplete": "email"},
    )


class JoinForm(FlaskForm):
    email = _email_field()
    password = PasswordField(
        _l("Password"),
        validators=[
            DataRequired(_l("Choose a password.")),
            Length(
                min=MIN_PASSWORD,
                max=MAX_PASSWORD,
                message=_l(
                    "Between %(low)s and %(high)s characters.", low=MIN_PASSWORD, high=MAX_PASSWORD
                ),
            ),
            _plain,
        ],
        render_kw={"autocomplete": "new-password"},
    )
    name = StringField(
        _l("Name (optional)"),
        validators=[Optional(), Length(max=MAX_NAME), _plain],
        render_kw={"autocomplete": "name"},
    )


class SignInForm(FlaskForm):
    email = EmailField(
        _l("Email"),
        validators=[DataRequired(_l("Enter your email address.")), Length(max=MAX_EMAIL)],
        render_kw={"autocomplete": "email"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(_l("Enter your password.")), Length(max=MAX_PASSWORD)],
        render_kw={"autocomplete": "current-password"},
    )


class ConsentForm(FlaskForm):
    """The five consents (SPEC 2): each box ticked is granted, each left empty withdrawn. The
    labels are the versioned texts themselves (`privacy.texts`), set by the view."""

    email = BooleanField()
    sms = BooleanField()
    post = BooleanField()
    sharing = BooleanField()
    profiling = BooleanField()


class EraseForm(FlaskForm):
    """Erasure cannot be undone: the member types its email and ticks a box to confirm."""

    email = EmailField(
        _l("Your email address"),
        validators=[DataRequired(_l("Type your email address to confirm.")), Length(max=MAX_EMAIL)],
        render_kw={"autocomplete": "off"},
    )
    confirm = BooleanField(
        _l("I understand that my card, my points and my details are gone for good."),
        validators=[DataRequired(_l("Tick the box to confirm."))],
    )


class AboutMeForm(FlaskForm):
    """What the member tells about itself (decision 301): each field optional, an empty one
    cleared. The choices are set by the view from `attributes`' fixed lists."""

    birth_date = DateField(_l("Birth date"), validators=[Optional()])
    household_size = IntegerField(
        _l("People in your household"), validators=[Optional(), NumberRange(1, 20)]
    )
    interests = SelectMultipleField(_l("Interests"), validators=[Optional()])
    region = SelectField(_l("Region"), validators=[Optional()])
