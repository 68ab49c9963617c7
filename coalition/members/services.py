"""Operations on members. Creating one also opens its points account and gives it a card and a
secret for its rotating redemption code; `register_member` is the checked way in (sign-up and
enrolment), turning a taken email or card into its problem. `find_member` and its kin find
active members, with their account, by card, `mbr_` id, internal id or account."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyotp
from sqlalchemy import ColumnElement, Select, bindparam, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coalition import clock, outbox, tenancy
from coalition.database import Hot, table
from coalition.errors import CoalitionError, InvalidRequest, NotFound
from coalition.ids import new_id
from coalition.ledger import accounts
from coalition.ledger.models import Account
from coalition.members import cards
from coalition.members.models import Member

members = table(Member)
account_table = table(Account)

# 10^11 random bodies per prefix: two draws colliding this many times in a row means the
# random source is broken, not bad luck (TIGER_STYLE: a bound on every loop).
MAX_CARD_DRAWS = 5


class EmailTaken(CoalitionError):
    status, code, title = 409, "email_taken", "Email already registered"


class CardTaken(CoalitionError):
    status, code, title = 409, "card_taken", "Card already issued"


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


def addressed_by(card_or_id: str) -> ColumnElement[bool]:
    """The condition that finds a member by card number (as typed: `cards.as_digits`) or `mbr_`
    id (SPEC 3.1: members are also addressed by card); `not_found` for what can be neither."""
    column, ref = address(card_or_id)
    return members.c[column] == ref


def address(card_or_id: str) -> tuple[str, str]:
    """The column that finds a member named by `card_or_id`, and the value it must have."""
    if card_or_id.startswith("mbr_"):
        return "public_id", card_or_id
    number = cards.as_digits(card_or_id)
    if cards.is_valid(number, number[:4]):
        return "card_number", number
    raise NotFound("no such member")


def _found() -> Select[Any]:
    """Members with their points account, in the columns of `FoundMember`."""
    return select(
        members.c.id,
        members.c.public_id,
        members.c.card_number,
        members.c.status,
        members.c.tier,
        account_table.c.id.label("account_id"),
    ).join(account_table, account_table.c.member_id == members.c.id)


def _active(row: Any) -> FoundMember:
    if row is None or row.status != "active":
        raise NotFound("no such member")
    return FoundMember(*row)


def find_member(session: Session, card_or_id: str) -> FoundMember:
    """A member by card number or `mbr_` id (SPEC 3.1: members are also addressed by card).
    A blocked card or an unknown one is `not_found`, like any object the caller cannot see."""
    condition = addressed_by(card_or_id)
    return _active(session.execute(_found().where(condition)).one_or_none())


class MemberLock:
    """`find_member`, with its points account locked for the rest of the transaction (one
    account: the lock order holds), in one statement built once (`Hot`); `also`: scalar columns
    the caller reads in the same round trip (a purchase, its merchant's terms), with
    `bindparam`s for the values given on each call."""

    def __init__(self, *also: Any) -> None:
        self._by = {
            column: Hot(
                _found()
                .add_columns(
                    account_table.c.balance,
                    account_table.c.debt,
                    account_table.c.welcomed,
                    account_table.c.pending,
                )
                .add_columns(*also)
                .where(members.c[column] == bindparam("ref"))
                .with_for_update(of=account_table)
            )
            for column in ("public_id", "card_number")
        }

    def __call__(
        self, session: Session, card_or_id: str, **params: Any
    ) -> tuple[FoundMember, accounts.MemberAccount, Any]:
        """The member, its locked account, and the whole row (`also` as its last columns)."""
        column, ref = address(card_or_id)
        rows = self._by[column].rows(session.connection(), {**params, "ref": ref})
        row = rows[0] if rows else None
        if row is None or row.status != "active":
            raise NotFound("no such member")
        member = FoundMember(
            row.id, row.public_id, row.card_number, row.status, row.tier, row.account_id
        )
        locked = accounts.MemberAccount(
            row.account_id, row.id, row.balance, row.debt, row.welcomed, row.pending
        )
        return member, locked, row


find_and_lock_member = MemberLock()


def member_by_id(session: Session, member_id: int) -> FoundMember:
    """An active member by its internal id (a member token's, say); `not_found` otherwise."""
    return _active(session.execute(_found().where(members.c.id == member_id)).one_or_none())


def member_of_account(session: Session, account_id: int) -> FoundMember:
    """The active member whose points account this is (a transaction's or a hold's owner)."""
    return _active(session.execute(_found().where(account_table.c.id == account_id)).one_or_none())


def find_members(session: Session, refs: Iterable[str]) -> dict[str, FoundMember]:
    """`find_member` for many card numbers and `mbr_` ids in one query: the active members
    found, by the reference that named them (unknown, malformed or blocked ones are absent)."""
    named_by: dict[str, list[str]] = {}  # a public id or a card's digits: the refs naming it
    public_ids, card_numbers = set(), set()
    for ref in refs:
        if ref.startswith("mbr_"):
            public_ids.add(ref)
            named_by.setdefault(ref, []).append(ref)
            continue
        number = cards.as_digits(ref)
        if cards.is_valid(number, number[:4]):
            card_numbers.add(number)
            named_by.setdefault(number, []).append(ref)
    if not public_ids and not card_numbers:
        return {}
    rows = session.execute(
        _found().where(
            or_(
                members.c.public_id.in_(sorted(public_ids)),
                members.c.card_number.in_(sorted(card_numbers)),
            )
        )
    ).all()
    found: dict[str, FoundMember] = {}
    for row in rows:
        if row.status != "active":
            continue
        member = FoundMember(*row)
        for key in (member.public_id, member.card_number):
            for ref in named_by.get(key, ()):
                found[ref] = member
    return found


@dataclass(frozen=True)
class NewMember:
    id: int
    public_id: str
    card_number: str
    email: str | None
    phone: str | None
    name: str | None
    tier: str
    created_at: datetime


def check_card_number(card_number: str, prefix: str) -> None:
    """A pre-printed card must be one of this coalition's: 16 digits, its prefix, a good Luhn
    digit (SPEC 2). Refused with `validation_error` naming `card_number`."""
    if not cards.is_valid(card_number, prefix):
        raise InvalidRequest(
            "the card number is not a valid card of this coalition",
            errors={
                "card_number": [
                    f"must be {cards.CARD_LENGTH} digits starting {prefix} with a valid check digit"
                ]
            },
        )


def _violated(error: IntegrityError) -> str | None:
    """Which unique column an insert into `members` collided on: "email", "card_number" or
    None (PostgreSQL names the constraint; SQLite names the column in its message)."""
    diagnostics = getattr(error.orig, "diag", None)
    described = getattr(diagnostics, "constraint_name", None) or str(error.orig)
    for column in ("email", "card_number"):
        if column in described:
            return column
    return None


def _created(
    session: Session, member_id: int, public_id: str, merchant_id: int | None, now: datetime
) -> None:
    """`member.created` (SPEC 3.6): the enrolling merchant hears of its own new member; an
    online sign-up is the coalition's event alone, written as the system (a visitor who joins
    is nobody yet, and may write no coalition row). Ids only, no contact details."""
    data = {"member": {"id": public_id, "tier": "Member", "created_at": now.isoformat()}}
    if merchant_id is not None:
        outbox.emit(
            session, "member.created", data, now, merchant_id=merchant_id, member_id=member_id
        )
        return
    with tenancy.acting_as(tenancy.SYSTEM, session):
        outbox.emit(session, "member.created", data, now, member_id=member_id)


def register_member(
    session: Session,
    *,
    now: datetime,
    card_prefix: str,
    card_number: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    name: str | None = None,
    password_hash: str | None = None,
    enrolled_by_merchant_id: int | None = None,
) -> NewMember:
    """A member who signs up online or is enrolled at a till, with a pre-printed card (checked)
    or a new random one. Refusals: `validation_error` for a card that is not ours, `card_taken`
    for one already issued, `email_taken` for an email already registered (in any case).

    Each attempt runs in a savepoint and relies on the unique indexes, so two requests racing
    for one email or card get one member and one 409; a clash between random cards (about one
    in 10^11 per pair) draws again."""
    if card_number is not None:
        card_number = cards.as_digits(card_number)
        check_card_number(card_number, card_prefix)
    email = email.lower() if email else None
    for _ in range(MAX_CARD_DRAWS):
        card = card_number or cards.new_card_number(card_prefix)
        savepoint = session.begin_nested()
        try:
            member_id, public_id = create_member(
                session,
                now=now,
                card_number=card,
                email=email,
                phone=phone,
                name=name,
                password_hash=password_hash,
                enrolled_by_merchant_id=enrolled_by_merchant_id,
            )
            _created(session, member_id, public_id, enrolled_by_merchant_id, now)
            savepoint.commit()
        except IntegrityError as error:
            savepoint.rollback()
            column = _violated(error)
            if column == "email":
                raise EmailTaken("a member with this email is already registered") from error
            if column == "card_number" and card_number is not None:
                raise CardTaken("this card has already been issued to a member") from error
            if column != "card_number":
                raise
            continue
        return NewMember(member_id, public_id, card, email, phone, name, "Member", now)
    raise RuntimeError(f"{MAX_CARD_DRAWS} random card numbers in a row were already issued")
