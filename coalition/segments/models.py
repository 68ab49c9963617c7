"""A segment is a saved filter (`definition`, a validated document) owned by a merchant (over its
own customers) or by the operator (`merchant_id` NULL: coalition-wide). Its members, as last
evaluated, are the rows of `segment_members`; a campaign that targets the segment reads them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from coalition.database import BigId, Json, UTCDateTime, table
from coalition.extensions import Base


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = (Index("ix_segments_merchant", "merchant_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    # The merchant that defined it; NULL for the operator's coalition-wide segments.
    merchant_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("merchants.id", ondelete="RESTRICT")
    )
    name: Mapped[str] = mapped_column(String(200))
    definition: Mapped[dict[str, Any]] = mapped_column(Json)
    # As of the last evaluation (`evaluated_at`): how many members it held.
    member_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SegmentMember(Base):
    """A member of a segment as of its last evaluation."""

    __tablename__ = "segment_members"
    __table_args__ = (Index("ix_segment_members_member", "member_id", "segment_id"),)

    segment_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("members.id", ondelete="RESTRICT"), primary_key=True
    )


segments = table(Segment)
segment_members = table(SegmentMember)
