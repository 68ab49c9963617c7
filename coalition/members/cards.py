"""Card numbers (SPEC 2): 16 digits, a configurable 4-digit coalition prefix, 11 random digits
and a Luhn check digit, so typos are caught and numbers cannot be guessed in sequence."""

from __future__ import annotations

import secrets

CARD_LENGTH = 16
PREFIX_LENGTH = 4
DEFAULT_PREFIX = "6375"


def luhn_check_digit(digits: str) -> str:
    """The digit that makes `digits` + it pass the Luhn check."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:  # doubled: these sit at odd positions once the check digit is on
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def as_digits(typed: str) -> str:
    """A card number as a person types it from the card, in groups split by spaces or dashes
    (`6375 1234 5678 9012`), as its digits alone. Nothing else is taken out: a dot, a tab or
    another script's digits still make it no card of ours."""
    return typed.replace(" ", "").replace("-", "")


def is_valid(number: str, prefix: str = DEFAULT_PREFIX) -> bool:
    return (
        len(number) == CARD_LENGTH
        and number.isascii()
        and number.isdigit()
        and number.startswith(prefix)
        and luhn_check_digit(number[:-1]) == number[-1]
    )


def new_card_number(prefix: str = DEFAULT_PREFIX) -> str:
    body = prefix + "".join(secrets.choice("0123456789") for _ in range(11))
    return body + luhn_check_digit(body)


def masked(number: str) -> str:
    """What a till may print: the prefix and the last four digits."""
    return f"{number[:4]} •••• •••• {number[-4:]}"
