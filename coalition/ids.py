"""Public identifiers: a prefix that names the kind (SPEC 3.1) and 24 random base-62 characters
(about 143 bits), so an id can be neither guessed nor enumerated."""

from __future__ import annotations

import re
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
_LENGTH = 24
_SPACE = len(_ALPHABET) ** _LENGTH
_PAIRS = [first + second for first in _ALPHABET for second in _ALPHABET]
_PAIR_COUNT = len(_PAIRS)
PREFIXES = frozenset(
    {
        "mer",
        "mbr",
        "txn",
        "hold",
        "stm",
        "run",
        "evt",
        "whe",
        "seg",
        "cli",
        "pay",
        "pmb",
        "drw",
        "rwd",
        "ord",
        "fra",
        "dsp",
    }
)
# What any id of ours looks like, with room to spare: a look-up never sends anything else to
# the database (a NUL byte would make PostgreSQL fail the whole request).
_SHAPE = re.compile(r"([a-z]{3,4})_[A-Za-z0-9]{1,60}")


def new_id(prefix: str) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    # One draw from the whole space, written in base 62 two characters at a time: as uniform
    # as 24 draws of a character, at one read of the system's random source instead of 24 (a
    # batch of 1,000 purchases makes 6,000 ids).
    number = secrets.randbelow(_SPACE)
    pairs = []
    for _ in range(_LENGTH // 2):
        number, pair = divmod(number, _PAIR_COUNT)
        pairs.append(_PAIRS[pair])
    return prefix + "_" + "".join(pairs)


def is_public_id(value: object, prefix: str) -> bool:
    """Whether `value` could be an id with `prefix` (`cli`, `mer`...): what was typed or sent
    is checked before any query is made with it."""
    if not isinstance(value, str):
        return False
    shape = _SHAPE.fullmatch(value)
    return shape is not None and shape.group(1) == prefix
