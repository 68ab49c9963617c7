"""The merchant portal's forms. They check what the merchant API's schemas check
(`merchants.schemas.ApplicationIn`, `ClientIn`, the member enrolment), with the same bounds."""

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
    TextAreaField,
    URLField,
    widgets,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    Optional,
    Regexp,
    ValidationError,
)

from coalition.oauth import scopes
from coalition.oauth.clients import MAX_REDIRECT_URIS
from coalition.web.api import EMAIL, HTTP_URL, plain_text

MIN_PASSWORD, MAX_PASSWORD = 10, 200
MAX_EMAIL = 320


def _plain(_form: FlaskForm, field: Field) -> None:
    try:
        plain_text(field.data or "")
    except marshmallow.ValidationError as error:
        raise ValidationError(_l("Use letters, digits and punctuation only.")) from error


def _email() -> EmailField:
    return EmailField(
        _l("Email"),
        validators=[
            DataRequired(_l("Enter an email address.")),
            Length(max=MAX_EMAIL),
            Regexp(
                EMAIL.removesuffix("$") + r"\Z",
                message=_l("Enter an email like name@shop.example."),
            ),
        ],
        render_kw={"autocomplete": "email"},
    )


def _new_password(label: str = "Password") -> PasswordField:
    return PasswordField(
        _l("Password") if label == "Password" else _l("New password"),
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


class BusinessForm(FlaskForm):
    """The wizard's first step: who the business is."""

    name = StringField(
        _l("Business name"),
        validators=[DataRequired(_l("Enter the business's name.")), Length(max=200), _plain],
        render_kw={"autocomplete": "organization"},
    )
    country = StringField(
        _l("Country (two-letter code, e.g. DE)"),
        validators=[
            DataRequired(_l("Enter the country's code.")),
            Regexp(r"^[A-Za-z]{2}\Z", message=_l("Two letters, like DE or FR.")),
        ],
        render_kw={"autocomplete": "country", "maxlength": 2},
    )
    category = StringField(
        _l("What you sell (e.g. groceries)"),
        validators=[DataRequired(_l("Enter what the business sells.")), Length(max=80), _plain],
    )
    website = URLField(
        _l("Website (optional)"),
        validators=[
            Optional(),
            Length(max=500),
            Regexp(
                HTTP_URL.removesuffix("$") + r"\Z", message=_l("An address starting with https://")
            ),
        ],
        render_kw={"autocomplete": "url"},
    )


class ContactForm(FlaskForm):
    """The wizard's second step: who to reach; the email is also the sign-in."""

    contact_name = StringField(
        _l("Contact person"),
        validators=[DataRequired(_l("Enter a contact person's name.")), Length(max=200), _plain],
        render_kw={"autocomplete": "name"},
    )
    email = _email()


class PasswordStepForm(FlaskForm):
    """The wizard's last step: the portal password and the terms."""

    password = _new_password()
    terms = BooleanField(
        _l("I accept the coalition's partner terms"),
        validators=[DataRequired(_l("Accept the terms to apply."))],
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


class ResetRequestForm(FlaskForm):
    email = _email()


class ResetForm(FlaskForm):
    password = _new_password("New password")


def _type_choices() -> list[SelectChoice]:
    return [
        SelectChoice("", _l("Any")),
        SelectChoice("earn", _l("Purchase")),
        SelectChoice("redeem", _l("Redemption")),
        SelectChoice("refund", _l("Refund")),
        SelectChoice("reversal", _l("Reversal")),
        SelectChoice("expiry", _l("Expiry")),
    ]


class TransactionFilterForm(FlaskForm):
    """The transactions' filter, read from the query string (a GET form: no CSRF)."""

    class Meta:
        csrf = False

    since = DateField(_l("From"), validators=[Optional()])
    until = DateField(_l("To"), validators=[Optional()])
    type = SelectField(_l("Type"), choices=_type_choices, validators=[Optional()], default="")
    member = StringField(_l("Member (card number)"), validators=[Optional(), Length(max=40)])


class AudienceForm(FlaskForm):
    """The audience's channel, read from the query string (a GET form: no CSRF)."""

    class Meta:
        csrf = False

    channel = SelectField(
        _l("Channel"),
        choices=lambda: [
            SelectChoice("email", _l("Email")),
            SelectChoice("sms", _l("Text message (SMS)")),
            SelectChoice("post", _l("Post")),
        ],
        default="email",
    )


class LookupForm(FlaskForm):
    class Meta:
        csrf = False

    card = StringField(
        _l("Card number"),
        validators=[DataRequired(_l("Enter a card number.")), Length(max=40)],
        render_kw={"inputmode": "numeric"},
    )


class EnrolForm(FlaskForm):
    card_number = StringField(
        _l("Pre-printed card number (optional)"),
        validators=[Optional(), Length(max=32)],
        render_kw={"inputmode": "numeric"},
    )
    name = StringField(_l("Name (optional)"), validators=[Optional(), Length(max=200), _plain])
    email = EmailField(
        _l("Email (optional)"),
        validators=[
            Optional(),
            Length(max=MAX_EMAIL),
            Regexp(
                EMAIL.removesuffix("$") + r"\Z", message=_l("Enter an email like name@example.org.")
            ),
        ],
    )
    phone = StringField(
        _l("Phone (optional)"),
        validators=[
            Optional(),
            Regexp(
                r"^\+?[0-9][0-9 ()./-]{2,30}\Z",
                message=_l("Digits, an optional leading +, spaces or dashes."),
            ),
        ],
        render_kw={"autocomplete": "off", "inputmode": "tel"},
    )


def _redirect_uris(_form: FlaskForm, field: Field) -> None:
    lines = [line.strip() for line in (field.data or "").splitlines() if line.strip()]
    if len(lines) > MAX_REDIRECT_URIS:
        raise ValidationError(_l("At most %(n)s addresses.", n=MAX_REDIRECT_URIS))
    pattern = HTTP_URL.removesuffix("$") + r"\Z"
    import re

    for line in lines:
        if len(line) > 500 or not re.match(pattern, line):
            raise ValidationError(_l("Not an address starting with https://: %(uri)s", uri=line))


class ClientForm(FlaskForm):
    name = StringField(
        _l("Name (e.g. Till 1, web shop)"),
        validators=[DataRequired(_l("Name the client.")), Length(max=200), _plain],
    )
    scopes = SelectMultipleField(
        _l("What it may do"),
        choices=[SelectChoice(scope, scope) for scope in sorted(scopes.ALLOWED["merchant"])],
        validators=[DataRequired(_l("Choose at least one permission."))],
        option_widget=widgets.CheckboxInput(),
        widget=widgets.ListWidget(prefix_label=False),
    )
    redirect_uris = TextAreaField(
        _l("Redirect addresses, one per line (apps that act for members only)"),
        validators=[Optional(), _redirect_uris],
    )

    def uris(self) -> list[str]:
        return [
            line.strip() for line in (self.redirect_uris.data or "").splitlines() if line.strip()
        ]


class PendingWindowForm(FlaskForm):
    """SPEC 2, Pending points: the merchant's return period, in days (0: none)."""

    pending_days = IntegerField(
        _l("Pending window (days a purchase's points wait before they can be spent)"),
        validators=[InputRequired(_l("Give a number of days, 0 for none."))],
    )


class WebhookEndpointForm(FlaskForm):
    """A webhook endpoint, as `webhooks.schemas.WebhookEndpointIn` takes it; the URL's safety is
    checked by the service (`webhooks.addresses`), which says why it refuses one."""

    url = StringField(
        _l("Address (https://…)"),
        validators=[
            DataRequired(_l("Give the address to send events to.")),
            Length(max=2048),
            Regexp(r"^https://", message=_l("The address must start with https://.")),
            _plain,
        ],
    )
    events = SelectMultipleField(
        _l("Events to send (tick none for every event, those added later too)"),
        choices=[],
        validators=[Optional()],
        option_widget=widgets.CheckboxInput(),
        widget=widgets.ListWidget(prefix_label=False),
    )
    description = StringField(
        _l("Description (optional)"), validators=[Optional(), Length(max=200), _plain]
    )
