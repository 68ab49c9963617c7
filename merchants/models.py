"""The merchant: a tenant of the coalition. Everything a merchant owns carries its `id`.

An application to join is a merchant in status `pending`; the operator approves (`active`) or
refuses it (`refused`, with a reason the merchant reads), and may suspend an active one
(`suspended`: its clients stop working at once)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from coalition.database import BigId, UTCDateTime
from coalition.extensions import Base

MERCHANT_STATUSES = ("pending", "active", "suspended", "refused")
MAX_REFUSAL_REASON = 1000
DEFAULT_BASE_RATE = Decimal("1")
# SPEC 2, Pending points: a merchant's window is 0 to 60 days (within the operator's bounds).
MAX_PENDING_DAYS = 60


class Merchant(Base):
    __tablename__ = "merchants"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'active', 'suspended', 'refused')", name="status"),
        CheckConstraint("base_rate > 0", name="base_rate_positive"),
        CheckConstraint(
            f"pending_days >= 0 AND pending_days <= {MAX_PENDING_DAYS}", name="pending_days"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # The application (SPEC 3.3): how to reach the merchant and who it is.
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    country: Mapped[str | None] = mapped_column(String(2))
    category: Mapped[str | None] = mapped_column(String(80))
    website: Mapped[str | None] = mapped_column(String(500))
    contact_name: Mapped[str | None] = mapped_column(String(200))
    # For the portal (a later issue); hashed with werkzeug's scrypt.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # Points per unit of currency (SPEC 2, Earn rules); the rules issue adds the rest.
    base_rate: Mapped[Decimal] = mapped_column(
        Numeric(12, 4), default=DEFAULT_BASE_RATE, server_default="1"
    )
    # SPEC 2, Pending points: days a purchase's points stay pending (its return period); 0, none.
    pending_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Stripe (SPEC 3.7): the connected account it is paid into, the customer it is invoiced as.
    stripe_account_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # An application the operator refused: when, and why (shown to the merchant).
    refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refusal_reason: Mapped[str | None] = mapped_column(String(MAX_REFUSAL_REASON))
