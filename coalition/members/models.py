"""The member table: identity, card, optional contact and sign-in, and the state of the rotating
redemption code (its secret, the last time step used, wrong attempts and the lock)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from coalition.database import BigId, Json, UTCDateTime
from coalition.extensions import Base

MEMBER_STATUSES = ("active", "blocked")
# A paid membership's life (coalition.members.premium): bought (pending until Stripe confirms
# the payment), active for a year from then, lapsed after its end; `cancelled` when the payment
# never came (the checkout expired); `refunded` when Stripe refunded its payment.
MEMBERSHIP_STATUSES = ("pending", "active", "lapsed", "refunded", "cancelled")


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (CheckConstraint("status IN ('active', 'blocked')", name="status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    # SPEC 2: 16 digits, a coalition prefix, 11 random digits and a Luhn check digit.
    card_number: Mapped[str] = mapped_column(String(16), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    # Lower-cased; unique when given (the signup's "same email twice is 409").
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    tier: Mapped[str] = mapped_column(String(40), default="Member", server_default="Member")
    # The merchant at whose till the member joined (None: joined online).
    enrolled_by_merchant_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("merchants.id", ondelete="RESTRICT")
    )
    # RFC 6238: the per-member secret (base32), the last time step a code was accepted at (a
    # code is single use inside its step), and the lock after five wrong codes in 15 minutes.
    totp_secret: Mapped[str] = mapped_column(String(64))
    code_step_used: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    code_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    code_failures_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    code_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the member erased itself (SPEC 2): its contact and sign-in are gone, its card blocked.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MemberAttributes(Base):
    """What a member chose to tell about itself (SPEC 2, segments and targeted offers): each
    field optional, one row per member that gave any. Used for targeting only while the
    member's latest `profiling` consent is granted; exported and erased with the rest."""

    __tablename__ = "member_attributes"
    __table_args__ = (
        CheckConstraint("household_size BETWEEN 1 AND 20", name="household_size"),
        Index("ix_member_attributes_region", "region"),
    )

    member_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("members.id", ondelete="RESTRICT"), primary_key=True
    )
    birth_date: Mapped[date | None] = mapped_column(Date)
    household_size: Mapped[int | None] = mapped_column(SmallInteger)
    # A list of interest names (strings) the member ticked.
    interests: Mapped[list[Any] | None] = mapped_column(Json)
    region: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Membership(Base):
    """One year of a member's paid premium membership (SPEC 2), or the attempt to buy it.
    `period` counts the member's years: the first bought is 1, its renewal 2. At most one
    attempt per member and period is not cancelled, so a period is never bought twice. The
    price, currency and multiplier are those it was sold at. Coalition-wide like `members`
    (no row-level security): the purchase path, acting as a merchant, reads a member's
    multiplier; every read names its member."""

    __tablename__ = "memberships"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'active', 'lapsed', 'refunded', 'cancelled')", name="status"
        ),
        Index(
            "uq_memberships_member_period",
            "member_id",
            "period",
            unique=True,
            sqlite_where=text("status <> 'cancelled'"),
            postgresql_where=text("status <> 'cancelled'"),
        ),
        Index("ix_memberships_member_ends", "member_id", "ends_at"),
        Index("ix_memberships_status_ends", "status", "ends_at"),
        Index("ix_memberships_paid", "paid_at"),
        Index("ix_memberships_refunded", "refunded_at"),
        Index("ix_memberships_payment_intent", "payment_intent_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="RESTRICT"))
    period: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # A decimal as text ("1.5"): exact on both databases.
    multiplier: Mapped[str] = mapped_column(String(24))
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lapsed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
