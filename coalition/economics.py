"""The coalition's economics (SPEC 2). Until the settlement issue makes them operator-set,
versioned data, these are the terms in force: the SPEC's example values."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

CURRENCY: Final = "EUR"
MINOR_UNITS: Final = 100  # EUR has two decimals
POINT_VALUE: Final = Decimal("0.01")
EXPIRY_MONTHS: Final = 24
EARN_RATE_BOUNDS: Final = (Decimal("0.5"), Decimal("10"))
WELCOME_BONUS: Final = 100


def base_points(amount_minor: int, base_rate: Decimal) -> int:
    """SPEC 2: points per currency unit at the merchant's base rate, floored."""
    return int(Decimal(amount_minor) * base_rate // MINOR_UNITS)


def value_minor(points: int) -> int:
    """What `points` are worth in minor units of the currency (exact for the example's 0.01)."""
    return int(points * POINT_VALUE * MINOR_UNITS)
