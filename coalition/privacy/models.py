"""The consent history: one row per change of a member's consent for one purpose, never updated
or deleted. The current state of a purpose is its latest row (the highest id); no row is
"not given"."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from coalition.database import BigId, UTCDateTime
from coalition.extensions import Base

# SPEC 2: marketing per channel, sharing the contact with partners for direct mail, and
# profiling: using the attributes the member gave, and its behaviour, to target offers.
CHANNELS = ("email", "sms", "post")
PURPOSES = (*CHANNELS, "sharing", "profiling")
# Where a change was made: the member site, or a partner's app through the member API.
SOURCES = ("me", "api")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Consent(Base):
    __tablename__ = "member_consents"
    __table_args__ = (
        CheckConstraint(_one_of("purpose", PURPOSES), name="purpose"),
        CheckConstraint(_one_of("source", SOURCES), name="source"),
        CheckConstraint("(source = 'api') = (client_id IS NOT NULL)", name="api_names_client"),
        # The latest row of each purpose of a member: its current consent.
        Index("ix_member_consents_latest", "member_id", "purpose", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="RESTRICT"))
    purpose: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool] = mapped_column(Boolean)
    # The version of the consent text the member was shown (`texts.TEXTS`).
    text_version: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(8))
    # The OAuth client (`cli_...`) of the partner's app a change came through, for `api`.
    client_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
