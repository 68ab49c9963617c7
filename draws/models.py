"""The draws' tables (SPEC 2, Prize draws).

- A draw is `open` until it is closed (by the job at `closes_at`, or earlier by the operator),
  then `closed` for good. Its `seed` (32 random bytes, hex) is drawn at opening and kept secret
  until then; `seed_hash` is public from the start. Closing writes `entries_hash`,
  `entries_count`, `winners` (entrant pseudonyms, in the order drawn) and `closed_at`; nothing
  of a closed draw changes after.
- A paid entry (`draw_entries`) is one member's entry call: its number of entries and the
  redemption at the operator that paid for them.
- Free entries are not written as they are earned: at closing they are counted from the
  ledger's purchases at the draw's partners (`draw_partners`), decision 275.
- The closed list (`draw_entrants`) is written at closing: per member a fresh pseudonym, its
  paid and free entries. Only its pseudonyms and counts are ever shown."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from coalition.database import BigId, Json, UTCDateTime, table
from coalition.extensions import Base

STATUSES = ("open", "closed")


class Draw(Base):
    __tablename__ = "draws"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed')", name="status_known"),
        CheckConstraint("entry_points IS NULL OR entry_points > 0", name="entry_points_positive"),
        CheckConstraint("winners_count > 0", name="winners_count_positive"),
        # A draw can be entered somehow: with points, or by purchases (or both).
        CheckConstraint(
            "entry_points IS NOT NULL OR free_entry_min_amount_minor IS NOT NULL",
            name="some_way_in",
        ),
        CheckConstraint(
            "(free_entry_min_amount_minor IS NULL) = (currency IS NULL)"
            " AND (free_entry_min_amount_minor IS NULL OR free_entry_min_amount_minor > 0)",
            name="free_entries_priced",
        ),
        CheckConstraint(
            "(status = 'closed') = (closed_at IS NOT NULL AND entries_hash IS NOT NULL"
            " AND entries_count IS NOT NULL AND winners IS NOT NULL)",
            name="closed_has_outcome",
        ),
        # The closing job's work: open draws by closing time.
        Index(
            "ix_draws_open_closes_at",
            "closes_at",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    prize: Mapped[str] = mapped_column(String(200))
    # Points per entry; NULL: the draw takes free entries only.
    entry_points: Mapped[int | None] = mapped_column(BigId)
    # One free entry per purchase of at least this amount (minor units of `currency`) at a
    # partner of `draw_partners` while the draw is open; NULL: no free entries.
    free_entry_min_amount_minor: Mapped[int | None] = mapped_column(BigId)
    currency: Mapped[str | None] = mapped_column(String(3))
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime())
    winners_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(8), default="open")
    seed: Mapped[str] = mapped_column(String(64))
    seed_hash: Mapped[str] = mapped_column(String(64))
    entries_hash: Mapped[str | None] = mapped_column(String(64))
    entries_count: Mapped[int | None] = mapped_column(BigId)
    winners: Mapped[list[str] | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DrawPartner(Base):
    """A merchant whose purchases earn free entries in a draw."""

    __tablename__ = "draw_partners"

    draw_id: Mapped[int] = mapped_column(ForeignKey("draws.id"), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), primary_key=True)


class DrawEntry(Base):
    """Entries a member paid for with points: one row per entry call."""

    __tablename__ = "draw_entries"
    __table_args__ = (
        CheckConstraint("entries > 0 AND points > 0", name="entries_positive"),
        Index("ix_draw_entries_draw_member", "draw_id", "member_id"),
        Index("ix_draw_entries_member", "member_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    draw_id: Mapped[int] = mapped_column(ForeignKey("draws.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    entries: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(BigId)
    # The redemption at the operator that paid for them.
    transaction_id: Mapped[int] = mapped_column(ForeignKey("transactions.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DrawEntrant(Base):
    """A member in a closed draw's list: its pseudonym there and its entries."""

    __tablename__ = "draw_entrants"
    __table_args__ = (
        UniqueConstraint("draw_id", "entrant", name="uq_draw_entrants_draw_entrant"),
        UniqueConstraint("draw_id", "member_id", name="uq_draw_entrants_draw_member"),
        CheckConstraint(
            "paid_entries >= 0 AND free_entries >= 0 AND paid_entries + free_entries > 0",
            name="has_entries",
        ),
        Index("ix_draw_entrants_member", "member_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    draw_id: Mapped[int] = mapped_column(ForeignKey("draws.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    entrant: Mapped[str] = mapped_column(String(24))
    paid_entries: Mapped[int] = mapped_column(BigId)
    free_entries: Mapped[int] = mapped_column(BigId)


draws = table(Draw)
draw_partners = table(DrawPartner)
draw_entries = table(DrawEntry)
draw_entrants = table(DrawEntrant)

__all__: list[Any] = [
    "Draw",
    "DrawEntrant",
    "DrawEntry",
    "DrawPartner",
    "draw_entrants",
    "draw_entries",
    "draw_partners",
    "draws",
]
