"""Draws in tests: one opened as the operator's API would, and purchases made now (a draw
counts only purchases recorded while it is open)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from coalition import audit, clock
from draws import services
from tests import factories

OPERATOR = audit.Actor.operator_client("cli_test", "test operator")


def open_draw(
    session: Session,
    *,
    entry_points: int | None = 100,
    winners_count: int = 1,
    partners: list[str] | None = None,
    min_amount_minor: int = 2000,
    closes_in: timedelta = timedelta(days=7),
    now: datetime | None = None,
    prize: str = "A weekend in Riga",
) -> str:
    now = now or clock.utcnow()
    free = services.FreeEntries(partners, min_amount_minor, "EUR") if partners is not None else None
    return services.open_draw(
        session,
        prize=prize,
        entry_points=entry_points,
        closes_at=now + closes_in,
        winners_count=winners_count,
        free=free,
        coalition_currency="EUR",
        actor=OPERATOR,
        now=now,
    ).id


def purchase_now(
    session: Session, member: int, shop: int, amount_minor: int, now: datetime | None = None
) -> dict[str, Any]:
    return factories.purchase(
        session,
        member,
        shop,
        amount_minor // 100,
        amount_minor=amount_minor,
        now=now or clock.utcnow(),
    )
