"""The merchant: a tenant of the coalition. Everything a merchant owns carries its `id`.

An application to join is a merchant in status `pending`; the operator approves (`active`) or
refuses it (`refused`, with a reason the merchant reads), and may suspend an active one
(`suspended`: its clients stop working at once)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from coalition.database import BigId, Json, UTCDateTime
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
        CheckConstraint("monthly_issuance_cap >= 0", name="monthly_issuance_cap"),
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
    # Points per unit of currency (SPEC 2, Earn rules): the base rate of the merchant's earn
    # rules in force now (`EarnRulesVersion`), kept here too for the readers of the directory.
    base_rate: Mapped[Decimal] = mapped_column(
        Numeric(12, 4), default=DEFAULT_BASE_RATE, server_default="1"
    )
    # SPEC 2, Budgets: the merchant-funded points it may issue per calendar month (the
    # coalition's time zone), set by the operator; NULL: no cap.
    monthly_issuance_cap: Mapped[int | None] = mapped_column(BigId)
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


class EarnRulesVersion(Base):
    """One version of a merchant's earn rules (SPEC 2, Earn rules): the rules document, in force
    from `effective_from` until the next version's. Versions are never changed: a new one is
    written. A merchant with none earns at `merchants.base_rate` alone (version 1, implicit:
    `merchants.rules`)."""

    __tablename__ = "earn_rules"
    __table_args__ = (
        UniqueConstraint("merchant_id", "version", name="uq_earn_rules_version"),
        Index("ix_earn_rules_in_force", "merchant_id", "effective_from"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    version: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime())
    document: Mapped[dict[str, Any]] = mapped_column(Json)
    actor_id: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StampProgress(Base):
    """A member's stamps on one of a merchant's stamp cards (by the card's name): items bought
    in the card's category since its last reward. Changed only under the member's lock."""

    __tablename__ = "stamp_progress"
    __table_args__ = (
        UniqueConstraint("member_account_id", "merchant_id", "card", name="uq_stamp_progress"),
        CheckConstraint("stamps >= 0", name="stamps"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    card: Mapped[str] = mapped_column(String(100))
    stamps: Mapped[int] = mapped_column(BigId, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IssuanceCounter(Base):
    """The merchant-funded points a capped merchant has issued in one month (SPEC 2, Budgets):
    the row a capped merchant's purchases update atomically against its cap."""

    __tablename__ = "issuance_counters"
    __table_args__ = (
        UniqueConstraint("merchant_id", "month", name="uq_issuance_counters_month"),
        CheckConstraint("issued >= 0", name="issued"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    # The first day of the month, in the coalition's time zone.
    month: Mapped[date] = mapped_column(Date)
    issued: Mapped[int] = mapped_column(BigId, default=0)


class CampaignExposure(Base):
    """A purchase at which a targeted campaign reached its member, or held it out in its
    control group (`held_out`): written only then (`merchants.targeting`, decision 313). A
    birthday or win-back campaign's report counts its groups from these rows."""

    __tablename__ = "campaign_exposures"
    __table_args__ = (
        Index("ix_campaign_exposures_campaign", "merchant_id", "campaign", "member_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    campaign: Mapped[str] = mapped_column(String(200))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    held_out: Mapped[bool] = mapped_column(Boolean)
    # The purchase's moment (its `occurred_at`, or when it was recorded).
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
