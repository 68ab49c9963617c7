"""A member's password: joining online with one, and checking it at a sign-in. One service for
every way in (SPEC 3.2 `/oauth/authorize`, 3.4 `POST /member-signups`, 3.9 `/me`), so a member
signs in everywhere with the same email and password, checked the same way."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from coalition.database import table
from coalition.members.models import Member
from coalition.members.services import NewMember, register_member

members = table(Member)

# Where a signed-in member's public id is kept in the signed session cookie, by the OAuth consent
# page and the member site alike: one sign-in serves both.
SESSION_KEY = "member"


@dataclass(frozen=True)
class SignedIn:
    """The member whose email and password were right."""

    id: int
    public_id: str
    email: str


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def join(
    session: Session,
    *,
    now: datetime,
    card_prefix: str,
    email: str,
    password: str,
    name: str | None = None,
) -> NewMember:
    """A member who joins online: a new card, no points yet (SPEC 2: the welcome bonus comes
    with the first purchase anywhere). An email already registered is `email_taken`."""
    return register_member(
        session,
        now=now,
        card_prefix=card_prefix,
        email=email,
        name=name,
        password_hash=hash_password(password),
    )


@cache
def _decoy_hash() -> str:
    return hash_password("not anybody's password")


def authenticate(session: Session, email: str, password: str) -> SignedIn | None:
    """The active member with this email and password, or None. An unknown email costs as much
    time as a wrong password, so the answer tells nobody which emails are members."""
    email = email.strip().lower()
    row = None
    # No stored email holds a control character or a lone surrogate (the sign-up refuses them),
    # and PostgreSQL cannot even compare with a NUL: such an email is unknown, asked nothing.
    if not any(unicodedata.category(char) in ("Cc", "Cs") for char in email):
        row = session.execute(
            select(
                members.c.id,
                members.c.public_id,
                members.c.email,
                members.c.password_hash,
                members.c.status,
            ).where(members.c.email == email)
        ).one_or_none()
    known_hash = row.password_hash if row is not None and row.password_hash else None
    if not check_password_hash(known_hash or _decoy_hash(), password):
        return None
    if row is None or known_hash is None or row.status != "active":
        return None
    return SignedIn(row.id, row.public_id, row.email)
