"""The hand-worked coalition of tests/insights/test_insights.py (its docstring tells it)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from coalition.ledger import expiry
from coalition.ledger.rows import Actor
from coalition.members.services import create_member
from settlement import runs
from tests import factories


def _at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=10, tzinfo=UTC)


@pytest.fixture
def coalition(session: Session) -> dict[str, int]:
    a = factories.merchant(session, "Alpha")
    b = factories.merchant(session, "Beta")
    c = factories.merchant(session, "Gamma")
    t0 = _at("2025-12-01")
    m1 = create_member(session, now=t0, enrolled_by_merchant_id=a)[0]
    m2 = create_member(session, now=t0, enrolled_by_merchant_id=b)[0]
    m3 = create_member(session, now=t0)[0]
    m4 = create_member(session, now=t0, enrolled_by_merchant_id=a)[0]
    m5 = create_member(session, now=t0)[0]

    def buy(member: int, shop: int, points: int, day: str, **extra: datetime) -> None:
        factories.purchase(
            session, member, shop, points, amount_minor=points * 100, now=_at(day), **extra
        )

    buy(m4, a, 50, "2025-12-10", expires_at=_at("2026-03-01"))
    buy(m1, a, 10, "2026-01-10")
    buy(m3, a, 40, "2026-01-15")
    buy(m1, b, 20, "2026-01-20")
    buy(m2, a, 30, "2026-02-05")
    buy(m1, b, 5, "2026-02-15")
    factories.redeem(session, m1, a, 15, now=_at("2026-02-16"))
    buy(m4, a, 20, "2026-02-20")
    expiry.expire_due_lots(
        session, cutoff=_at("2026-03-02"), now=_at("2026-03-02"), actor=Actor("job", "expiry")
    )
    buy(m5, c, 60, "2026-03-05")
    buy(m3, a, 10, "2026-03-10")
    buy(m3, b, 8, "2026-03-12")
    factories.redeem(session, m3, b, 8, now=_at("2026-03-15"))
    buy(m5, a, 2, "2026-03-20")
    buy(m2, a, 5, "2026-03-25")
    days = [
        "2025-12-10",
        "2026-01-10",
        "2026-01-15",
        "2026-01-20",
        "2026-02-05",
        "2026-02-15",
        "2026-02-16",
        "2026-02-20",
        "2026-03-02",
        "2026-03-05",
        "2026-03-10",
        "2026-03-12",
        "2026-03-15",
        "2026-03-20",
        "2026-03-25",
    ]
    for day in days:
        runs.settle(session, date.fromisoformat(day), _at(day) + timedelta(days=1))
    return {"a": a, "b": b, "c": c}
