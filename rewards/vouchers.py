"""Voucher codes (SPEC 2): unique, unguessable, readable aloud. 80 random bits written as 16
characters of Crockford's base 32 (digits and letters without I, L, O, U, so nothing reads as
another), shown in four groups of four (`7KQ2-M9XD-4HTV-0CRB`). What a till types is
normalised the Crockford way: case, dashes and spaces ignored, I and L read as 1, O as 0."""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BITS = 80
LENGTH = BITS // 5  # 16 characters, 5 bits each
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})


def new_code() -> str:
    """A fresh code, without dashes (as stored)."""
    number = secrets.randbits(BITS)
    chars = []
    for _ in range(LENGTH):
        number, digit = divmod(number, 32)
        chars.append(ALPHABET[digit])
    return "".join(chars)


def normalise(typed: str) -> str | None:
    """The stored form of what was typed, or None when it cannot be a code."""
    code = "".join(typed.split()).replace("-", "").upper().translate(_READ_AS)
    if len(code) != LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def shown(code: str) -> str:
    """The code as people read it: four groups of four."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))
