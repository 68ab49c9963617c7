"""The fraud events table: what the operator's fraud report (SPEC 3.10) must see. Only the
operator's and the system's tenants see it (row-level security, migration 20261129_notices)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from coalition.database import BigId, Json, UTCDateTime, table
from coalition.extensions import Base

FRAUD_KINDS: Final = ("member_velocity", "merchant_velocity")


class FraudEvent(Base):
    """Something the fraud report must see: what happened, to which member at which merchant,
    with its figures (`details`)."""

    __tablename__ = "fraud_events"
    __table_args__ = (
        CheckConstraint("kind IN ('member_velocity', 'merchant_velocity')", name="kind"),
        Index("ix_fraud_events_merchant", "merchant_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    details: Mapped[dict[str, Any]] = mapped_column(Json)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


fraud_events = table(FraudEvent)
