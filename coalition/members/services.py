"""Operations on members. Creating one also opens its points account and gives it a card and a
secret for its rotating redemption code."""

from __future__ import annotations

from datetime import datetime

import pyotp
from sqlalchemy import insert
from sqlalchemy.orm import Session

from coalition import clock
from coalition.database import table
from coalition.ids import new_id
from coalition.ledger import accounts
from coalition.members import cards
from coalition.members.models import Member

members = table(Member)


def create_member(
    session: Session,
    *,
    now: datetime | None = None,
    card_number: str | None = None,
    card_prefix: str = cards.DEFAULT_PREFIX,
    email: str | None = None,
    phone: str | None = None,
    name: str | None = None,
    password_hash: str | None = None,
    enrolled_by_merchant_id: int | None = None,
) -> tuple[int, str]:
    """A new member with its (empty) points account. Returns (id, public id). The caller has
    checked a pre-printed `card_number`; a new one is drawn otherwise."""
    public_id = new_id("mbr")
    member_id = session.execute(
        insert(members)
        .values(
            public_id=public_id,
            card_number=card_number or cards.new_card_number(card_prefix),
            status="active",
            email=email.lower() if email else None,
            phone=phone,
            name=name,
            password_hash=password_hash,
            tier="Member",
            enrolled_by_merchant_id=enrolled_by_merchant_id,
            totp_secret=pyotp.random_base32(),
            code_step_used=0,
            code_failures=0,
            created_at=now or clock.utcnow(),
        )
        .returning(members.c.id)
    ).scalar_one()
    accounts.open_member_account(session, member_id)
    return member_id, public_id
