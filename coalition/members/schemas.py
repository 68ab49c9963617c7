"""The members API's request and response bodies (SPEC 3.3, 3.4). Requests are `Strict`: a field
a caller must not set (`tier`, `balance`, `status`...) is refused with 422, never ignored.

Schema names are unique across the API (the OpenAPI document names its components after them),
hence the `Member` and `Me` prefixes."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from coalition.members import attributes
from coalition.web.api import EMAIL, PLAIN_TEXT, Strict, pattern, plain_text
from coalition.web.fields import MoneySchema, WholeNumber

# What the `members` columns hold.
MAX_EMAIL, MAX_PHONE, MAX_NAME = 320, 32, 200
MIN_PASSWORD, MAX_PASSWORD = 10, 200


def fits_lowered(value: str) -> None:
    """Emails are kept lower-cased, and lower-casing can lengthen a string ("İ" becomes two
    characters): the stored form must fit its column."""
    if len(value.lower()) > MAX_EMAIL:
        raise ValidationError(f"Longer than maximum length {MAX_EMAIL}.")


def _email(required: bool) -> fields.String:
    return fields.String(
        required=required,
        allow_none=not required,
        validate=[pattern(EMAIL, "Not a valid email address."), fits_lowered],
        metadata={"description": "an email address: name@example.org"},
    )


def _name() -> fields.String:
    return fields.String(
        allow_none=True,
        validate=[validate.Length(min=1, max=MAX_NAME), plain_text],
        metadata={"pattern": PLAIN_TEXT},
    )


class MemberSignupIn(Strict):
    email = _email(required=True)
    password = fields.String(
        required=True,
        load_only=True,
        validate=[validate.Length(min=MIN_PASSWORD, max=MAX_PASSWORD), plain_text],
        metadata={"pattern": PLAIN_TEXT},
    )
    name = _name()


class MemberEnrolmentIn(Strict):
    email = _email(required=False)
    phone = fields.String(
        allow_none=True,
        validate=validate.Regexp(
            r"^\+?[0-9][0-9 ()./-]{2,30}\Z",
            error="digits, an optional leading +, spaces, dots, dashes or brackets; at most 32",
        ),
    )
    name = _name()
    # A pre-printed card. Its Luhn digit and the coalition's prefix are checked by the service,
    # which knows the prefix; here only its shape.
    card_number = fields.String(allow_none=True, validate=validate.Length(min=1, max=32))


class MemberOut(Schema):
    """A member as its own sign-up or its enrolling till sees it: the full card number."""

    id = fields.String()
    card_number = fields.String()
    email = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    tier = fields.String()
    created_at = fields.DateTime()


class MemberEnrolledOut(MemberOut):
    phone = fields.String(allow_none=True)


class MemberLookupOut(Schema):
    """What any partner may see of a card: no contact details, no other shop's history."""

    id = fields.String()
    card = fields.String(metadata={"description": "masked: prefix and last four digits"})
    tier = fields.String()
    balance = fields.Integer()
    available = fields.Integer(
        metadata={"description": "what can be spent now: balance less holds and pending points"}
    )


class MeTierProgressOut(Schema):
    current = fields.String()
    next = fields.String(allow_none=True)
    qualifying_spend = fields.Nested(
        MoneySchema,
        metadata={"description": "purchases at every partner since `since`, less refunds"},
    )
    next_threshold = fields.Nested(MoneySchema, allow_none=True)
    spend_to_next = fields.Nested(MoneySchema, allow_none=True)
    since = fields.Date(metadata={"description": "first business day counted (12 months)"})


class MePremiumOut(Schema):
    """The premium membership in force: since when, until when (its end, exclusive), and the
    earn multiplier it gives."""

    id = fields.String()
    since = fields.DateTime()
    until = fields.DateTime()
    multiplier = fields.String(metadata={"description": 'a decimal, e.g. "1.5"'})


class MeAttributesIn(Strict):
    """What the member tells about itself (decision 301): a field left out keeps its value, a
    null clears it."""

    birth_date = fields.Date(allow_none=True)
    household_size = WholeNumber(
        allow_none=True, validate=validate.Range(attributes.MIN_HOUSEHOLD, attributes.MAX_HOUSEHOLD)
    )
    interests = fields.List(
        fields.String(validate=validate.OneOf(list(attributes.INTERESTS))),
        allow_none=True,
        validate=validate.Length(max=len(attributes.INTERESTS)),
    )
    region = fields.String(allow_none=True, validate=validate.OneOf(list(attributes.REGIONS)))


class MeAttributesOut(Schema):
    """What the member chose to tell (null: not given). Used for offers only while its
    `profiling` consent is granted."""

    birth_date = fields.Date(allow_none=True)
    household_size = fields.Integer(allow_none=True)
    interests = fields.List(fields.String(), allow_none=True)
    region = fields.String(allow_none=True)


class MeProfileOut(Schema):
    id = fields.String()
    card_number = fields.String()
    email = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    tier = fields.String()
    tier_progress = fields.Nested(MeTierProgressOut)
    premium = fields.Nested(
        MePremiumOut,
        allow_none=True,
        metadata={"description": "The premium membership in force now, or null."},
    )
    attributes = fields.Nested(MeAttributesOut)


class MeMerchantOut(Schema):
    id = fields.String()
    name = fields.String()


class MeExpiringOut(Schema):
    points = fields.Integer()
    expires_at = fields.DateTime()


class MePendingOut(Schema):
    points = fields.Integer()
    spendable_from = fields.Date(
        metadata={"description": "the business day from which these points can be spent"}
    )


class MeMerchantPointsOut(Schema):
    merchant = fields.Nested(MeMerchantOut)
    earned = fields.Integer()
    redeemed = fields.Integer()


class MeBalanceOut(Schema):
    points = fields.Integer()
    available = fields.Integer()
    held = fields.Integer()
    pending = fields.Integer(
        metadata={
            "description": "points in a merchant's pending window (SPEC 2): in `points`, not"
            " spendable until confirmed"
        }
    )
    pending_dates = fields.List(fields.Nested(MePendingOut))
    debt = fields.Integer()
    expiring = fields.List(fields.Nested(MeExpiringOut))
    by_merchant = fields.List(fields.Nested(MeMerchantPointsOut))


class MeTransactionOut(Schema):
    id = fields.String()
    type = fields.String()
    points = fields.Integer()
    merchant = fields.Nested(MeMerchantOut, allow_none=True)
    created_at = fields.DateTime()
    reason = fields.String()


class MeCodeOut(Schema):
    code = fields.String()
    expires_at = fields.DateTime()
