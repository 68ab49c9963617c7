"""The merchant: a tenant of the coalition. Everything a merchant owns carries its `id`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from coalition.database import BigId, UTCDateTime
from coalition.extensions import Base

MERCHANT_STATUSES = ("pending", "active", "suspended")


class Merchant(Base):
    __tablename__ = "merchants"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'active', 'suspended')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
