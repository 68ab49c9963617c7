"""A staff account of the operator: who signs in to `/ops`, with which role.

The email is kept lower-cased, so it is unique in any letter case. The password is hashed with
werkzeug's scrypt. `totp_secret` is the second factor (RFC 6238), NULL until the staff sets one
up; `totp_step_used` is the last time step a code was accepted at, so a code is single use.
Only the operator's and the system's tenants see these rows (row-level security)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from coalition.database import BigId, UTCDateTime
from coalition.extensions import Base

ROLES = ("admin", "finance", "support")


class Staff(Base):
    __tablename__ = "staff"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'finance', 'support')", name="role"),
        CheckConstraint("email = lower(email)", name="email_lower_case"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_step_used: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
