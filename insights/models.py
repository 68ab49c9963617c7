"""The nightly snapshot of the operator's coalition-wide insights for the default range (decision
342): a year of a busy coalition takes the live queries many seconds, the snapshot's read one
row. One row per scope and range; a later night's computation of the same range replaces it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from coalition.database import BigId, Json, UTCDateTime
from coalition.extensions import Base


class InsightSnapshot(Base):
    __tablename__ = "insight_snapshots"
    __table_args__ = (
        UniqueConstraint("scope", "first", "last", name="uq_insight_snapshots_window"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    first: Mapped[date] = mapped_column(Date)
    last: Mapped[date] = mapped_column(Date)
    figures: Mapped[dict[str, Any]] = mapped_column(Json)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())
