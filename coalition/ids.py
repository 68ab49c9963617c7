"""Public identifiers: a prefix that names the kind (SPEC 3.1) and 24 random base-62 characters
(about 143 bits), so an id can be neither guessed nor enumerated."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
PREFIXES = frozenset({"mer", "mbr", "txn", "hold", "stm", "run", "evt", "whe", "cli", "pay"})


def new_id(prefix: str) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))
