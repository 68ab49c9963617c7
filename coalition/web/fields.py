"""Field types every package's API schemas share, beside `Strict` (`coalition.web.api`): whole
numbers as JSON sends them, text a person typed, and an amount of money."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from coalition.web.api import NOT_BLANK_TEXT, Strict, plain_text

MAX_TEXT = 100


class WholeNumber(fields.Integer):
    """A whole number: `12`, or `12.0` (JSON has one kind of number, and JSON Schema's
    `integer` includes it). `12.5`, `true` and `"12"` are refused, and so is a float too large
    to be exact."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


def _plain(value: str) -> None:
    """Text a database and a receipt can hold: plain, and not only blanks."""
    plain_text(value)
    if not value.strip():
        raise ValidationError("must not be blank")


def text(max_length: int = MAX_TEXT, **kwargs: Any) -> fields.String:
    """Text a person typed, 1 to `max_length` characters: plain, and not only blanks."""
    metadata = {"pattern": NOT_BLANK_TEXT, **kwargs.pop("metadata", {})}
    return fields.String(
        validate=[validate.Length(min=1, max=max_length), _plain], metadata=metadata, **kwargs
    )


# No docstring: a schema's docstring would become its description in the OpenAPI document.
class MoneySchema(Strict):
    amount = fields.Integer(required=True)
    currency = fields.String(required=True)
