"""The member table: identity, card, optional contact and sign-in, and the state of the rotating
redemption code (its secret, the last time step used, wrong attempts and the lock)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from coalition.database import BigId, UTCDateTime
from coalition.extensions import Base

MEMBER_STATUSES = ("active", "blocked")


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
