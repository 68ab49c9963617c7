"""What the catalogue's tests share: a reward listed by a shop (through the service, as the API
would), and a member with points to spend."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from rewards import services
from tests import factories

GIFT = {
    "name": "Espresso cup",
    "kind": "gift",
    "points": 300,
    "stock": None,
    "cost_price": None,
    "valid_from": None,
    "valid_until": None,
    "fulfilment_days": 14,
    "category": "kitchen",
    "description": "A white porcelain cup.",
}


def reward(session: Session, supplier: int | None, **changes: Any) -> str:
    """A listing of `supplier` (None: the operator), its public id."""
    return services.create_reward(session, supplier, {**GIFT, **changes}, factories.T0).id


def member_with(session: Session, shop: int, points: int) -> int:
    """A member who earned `points` at `shop`."""
    member = factories.member(session)
    factories.purchase(session, member, shop, points)
    return member
