"""How settlement shows money (decision 94), one representation per kind of figure:

- an exact settlement amount, priced per point and not yet rounded (a position, a flow, a
  statement's lines, `exact_net` and `rounding`, a run's totals), is a decimal string in major
  units (`"-1.125"`), with the `currency` of the document it is in (SPEC 2);
- an amount in whole minor units (a statement's `opening`, `net` and `closing`, a payment, a
  payout, a value of points) is money: `{"amount": -78, "currency": "EUR"}` (SPEC 2).

People read both in major units with the currency (`EUR 0.78`), and a statement says in words
who pays whom. No database here: renditions use these too."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from coalition.economics import MINOR_UNIT_DIGITS

# What the operator is called where merchants are named (flows, liability).
OPERATOR = {"id": "operator", "name": "Coalition operator"}


class InvalidClosing(ValueError):
    """An amount that is not a whole number of minor units of a known currency."""


def minor_units(amount: str | Decimal, currency: str) -> int:
    """An exact major-unit amount (`"-0.78"`) in whole minor units (-78), signed; refused when
    it is not whole or the currency is unknown."""
    if currency not in MINOR_UNIT_DIGITS:
        raise InvalidClosing(f"no payments in currency {currency!r}")
    minor = Decimal(amount).scaleb(MINOR_UNIT_DIGITS[currency])
    if minor != minor.to_integral_value():
        raise InvalidClosing(f"{amount} {currency} is not rounded to minor units")
    return int(minor)


def money(amount_minor: int, currency: str) -> dict[str, Any]:
    return {"amount": amount_minor, "currency": currency}


def rounded(amount: str | Decimal, currency: str) -> dict[str, Any]:
    """A major-unit amount already rounded to minor units, as money."""
    return money(minor_units(amount, currency), currency)


def major(value: Mapping[str, Any]) -> str:
    """Money in major units, with exactly the currency's minor digits: `"-0.78"`."""
    digits = MINOR_UNIT_DIGITS[value["currency"]]
    amount = value["amount"]
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError(f"money is a whole number of minor units, got {amount!r}")
    return f"{Decimal(amount).scaleb(-digits):.{digits}f}"


def shown(value: Mapping[str, Any]) -> str:
    """Money as a person reads it: `EUR 0.78` (the sign is for the words around it to say)."""
    return f"{value['currency']} {major(money(abs(value['amount']), value['currency']))}"


def who_pays(merchant_name: str, closing: Mapping[str, Any]) -> str:
    """A statement's closing in words: who pays whom, and how much."""
    if closing["amount"] < 0:
        return f"The coalition pays {merchant_name} {shown(closing)}."
    if closing["amount"] > 0:
        return f"{merchant_name} pays the coalition {shown(closing)}."
    return f"Nothing to pay: {merchant_name} and the coalition are even."
