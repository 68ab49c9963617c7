"""Operations on members. Creating one also opens its points account and gives it a card and a
secret for its rotating redemption code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyotp
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from coalition import clock
from coalition.database import table
from coalition.errors import NotFound
from coalition.ids import new_id
from coalition.ledger import accounts
from coalition.ledger.models import Account
from coalition.members import cards
from coalition.members.models import Member

members = table(Member)
account_table = table(Account)


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


@dataclass(frozen=True)
class FoundMember:
    id: int
    public_id: str
    card_number: str
    status: str
    tier: str
    account_id: int


def find_member(session: Session, card_or_id: str) -> FoundMember:
    """A member by card number or `mbr_` id (SPEC 3.1: members are also addressed by card).
    A blocked card or an unknown one is `not_found`, like any object the caller cannot see."""
    if card_or_id.startswith("mbr_"):
        condition = members.c.public_id == card_or_id
    elif cards.is_valid(card_or_id, card_or_id[:4]):
        condition = members.c.card_number == card_or_id
    else:
        raise NotFound("no such member")
    row = session.execute(
        select(
            members.c.id,
            members.c.public_id,
            members.c.card_number,
            members.c.status,
            members.c.tier,
            account_table.c.id.label("account_id"),
        )
        .join(account_table, account_table.c.member_id == members.c.id)
        .where(condition)
    ).one_or_none()
    if row is None or row.status != "active":
        raise NotFound("no such member")
    return FoundMember(*row)
