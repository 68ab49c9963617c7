"""Members: the people who collect and spend points. This issue keeps only what the ledger needs
(an identity and its account); cards, codes and personal data arrive with the member API."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from coalition import clock
from coalition.database import BigId, UTCDateTime, table
from coalition.extensions import Base
from coalition.ids import new_id
from coalition.ledger import accounts


class Member(Base):
    __tablename__ = "members"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


def create_member(session: Session, *, now: datetime | None = None) -> tuple[int, str]:
    """A new member with its (empty) points account. Returns (id, public id)."""
    public_id = new_id("mbr")
    member_id = session.execute(
        insert(table(Member))
        .values(public_id=public_id, created_at=now or clock.utcnow())
        .returning(table(Member).c.id)
    ).scalar_one()
    accounts.open_member_account(session, member_id)
    return member_id, public_id
