"""The writers of privacy: a member's consents (appended, never changed) and its erasure.

Erasure (SPEC 2) removes what names the member, never what the ledger or settlement already
counted: the member's name, email, phone and password go, its card is blocked, its open lots
are written off to breakage through the ledger (an `expiry` transaction saying "erasure"), its
active holds are voided, every token and code it granted partners' apps is revoked, and every
copy of its contact kept elsewhere (events in the outbox, stored idempotent answers) is
scrubbed. Transactions, transfers and lot consumptions stay as they are (they never held the
member's contact), so `verify-ledger` holds and no settled figure moves."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyotp
from sqlalchemy import Text, cast, or_, select, update
from sqlalchemy.orm import Session

from coalition import outbox, tenancy
from coalition.database import insert_rows, table
from coalition.errors import NotFound
from coalition.idempotency import IdempotencyKey
from coalition.ledger import expiry, shapes
from coalition.ledger.accounts import lock_member
from coalition.ledger.models import Hold, Transaction
from coalition.ledger.rows import Actor
from coalition.members import attributes
from coalition.members.models import Member
from coalition.oauth import lookups as oauth_lookups
from coalition.privacy.models import PURPOSES, SOURCES, Consent
from coalition.privacy.reads import current_consents
from coalition.privacy.texts import TEXTS
from coalition.segments import services as segments

consents = table(Consent)
members = table(Member)
holds = table(Hold)
transactions = table(Transaction)
idempotency_keys = table(IdempotencyKey)
outbox_events = outbox.outbox_events

# What replaces the member's contact wherever a copy of it is scrubbed.
ERASED = "[erased]"
ERASURE_REASON = "erasure"


@dataclass(frozen=True)
class Source:
    """Where a change comes from: the member site (`me`), or a partner's app (`api`, with its
    OAuth client id)."""

    kind: str
    client_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in SOURCES or (self.kind == "api") != (self.client_id is not None):
            raise ValueError(f"bad consent source {self!r}")


ME = Source("me")


def set_consents(
    session: Session,
    member_id: int,
    wanted: Mapping[str, bool],
    *,
    source: Source,
    now: datetime,
) -> list[str]:
    """Record the member's choice for the purposes in `wanted`: a new row for each purpose whose
    state changes, or whose consent was given under an older text than today's (a renewal).
    A purpose never recorded counts as withdrawn, so withdrawing it records nothing. Returns
    the purposes recorded."""
    unknown = set(wanted) - set(PURPOSES)
    if unknown:
        raise ValueError(f"unknown consent purposes {sorted(unknown)}")
    current = current_consents(session, member_id)
    rows: list[dict[str, Any]] = []
    for purpose in PURPOSES:
        if purpose not in wanted:
            continue
        granted = bool(wanted[purpose])
        latest = current.get(purpose)
        version = TEXTS[purpose].version
        was_granted = latest is not None and latest.granted
        if granted == was_granted and (
            not granted or latest is None or latest.text_version == version
        ):
            continue
        rows.append(
            {
                "member_id": member_id,
                "purpose": purpose,
                "granted": granted,
                "text_version": version,
                "source": source.kind,
                "client_id": source.client_id,
                "created_at": now,
            }
        )
    insert_rows(session, consents, rows)
    if any(row["purpose"] == "profiling" and not row["granted"] for row in rows):
        # Decision 304: without profiling consent a member is in no segment, from now on.
        segments.forget_member(session, member_id)
    return [row["purpose"] for row in rows]


# Erasure -------------------------------------------------------------------------------------


class AlreadyErased(NotFound):
    """An erased member is gone: asking again finds nobody."""


@dataclass(frozen=True)
class Erasure:
    public_id: str
    # The contact that was removed, for the caller to forget elsewhere (a sign-in throttle).
    email: str | None
    points_written_off: int
    debt_left: int
    holds_voided: int
    tokens_revoked: int


# Other packages' tables that may hold a member's contact register a scrubber here:
# `scrub(session, member_id, contact, now)`, run inside the erasure's transaction as the system.
Scrubber = Callable[[Session, int, list[str], datetime], None]
SCRUBBERS: list[Scrubber] = []


def erase(session: Session, member_id: int, *, source: Source, now: datetime) -> Erasure:
    """Erase the member (SPEC 2), in the caller's transaction. An unknown, blocked or already
    erased member is `not_found`.

    The member's tokens, holds and events live in every merchant's tenant, so the erasure acts
    as the system, and so does the rest of the request: the token it came with is revoked now,
    and a transaction of that token's tenant would be refused (tenancy.TokenNotLive). The
    caller commits and answers, nothing more."""
    tenancy.enter(session, tenancy.SYSTEM)
    member = session.execute(
        select(
            members.c.id,
            members.c.public_id,
            members.c.status,
            members.c.email,
            members.c.phone,
            members.c.name,
        )
        .where(members.c.id == member_id)
        .with_for_update()
    ).one_or_none()
    if member is None or member.status != "active":
        raise AlreadyErased("no such member")
    account = lock_member(session, member_id)
    contact = [value for value in (member.email, member.phone, member.name) if value]

    voided = _void_holds(session, account.id, member_id, now)
    written_off = expiry.write_off(
        session,
        account_id=account.id,
        now=now,
        actor=Actor("member", member.public_id),
        reason=ERASURE_REASON,
    )
    set_consents(session, member_id, dict.fromkeys(PURPOSES, False), source=source, now=now)
    attributes.forget(session, member_id)
    segments.forget_member(session, member_id)
    revoked = oauth_lookups.revoke_member_grants(session, member_id, now)
    session.execute(
        update(members)
        .where(members.c.id == member_id)
        .values(
            email=None,
            phone=None,
            name=None,
            password_hash=None,
            status="blocked",
            # A code computed from the old secret proves nothing any more.
            totp_secret=pyotp.random_base32(),
            code_failures=0,
            code_failures_since=None,
            code_locked_until=None,
            erased_at=now,
        )
    )
    _scrub_events(session, member_id, contact)
    _scrub_idempotent_answers(session, contact)
    for scrub in SCRUBBERS:
        scrub(session, member_id, contact, now)
    _tell_merchants(session, account.id, member_id, member.public_id, now)
    debt = lock_member(session, member_id).debt
    return Erasure(member.public_id, member.email, written_off, debt, voided, revoked)


def _void_holds(session: Session, account_id: int, member_id: int, now: datetime) -> int:
    """Void the member's active holds (a till waiting to capture gets `not_found`), each with
    its `hold.voided` event to the hold's merchant."""
    voided = session.execute(
        update(holds)
        .where(holds.c.account_id == account_id, holds.c.status == "active")
        .values(status="voided", closed_at=now)
        .returning(holds.c.public_id, holds.c.points, holds.c.merchant_id)
    ).all()
    if not voided:
        return 0
    member = shapes.member(session, member_id)
    outbox.record(
        session,
        [
            outbox.event_row(
                "hold.voided",
                {
                    "hold": shapes.closed_hold(hold.public_id, hold.points, "voided"),
                    "member": member,
                },
                now,
                merchant_id=hold.merchant_id,
                member_id=member_id,
            )
            for hold in sorted(voided)
        ],
    )
    return len(voided)


def _tell_merchants(
    session: Session, account_id: int, member_id: int, public_id: str, now: datetime
) -> None:
    """Every merchant where the member earned may hold its contact (from its audience):
    `member.erased` asks each to forget it (GDPR art. 17(2), 19)."""
    merchant_ids = (
        session.execute(
            select(transactions.c.merchant_id)
            .where(
                transactions.c.member_account_id == account_id,
                transactions.c.type == "earn",
                transactions.c.merchant_id.is_not(None),
            )
            .distinct()
        )
        .scalars()
        .all()
    )
    outbox.record(
        session,
        [
            outbox.event_row(
                "member.erased",
                {"member": {"id": public_id}},
                now,
                merchant_id=merchant_id,
                member_id=member_id,
            )
            for merchant_id in sorted(merchant_ids)
        ],
    )


def scrubbed(value: Any, contact: Iterable[str]) -> Any:
    """`value` (a JSON document) with every string that holds any of `contact` replaced by
    ERASED, in any letter case."""
    needles = [c.lower() for c in contact if c]
    if isinstance(value, str):
        lowered = value.lower()
        return ERASED if any(n in lowered for n in needles) else value
    if isinstance(value, list):
        return [scrubbed(item, needles) for item in value]
    if isinstance(value, dict):
        return {key: scrubbed(item, needles) for key, item in value.items()}
    return value


def _mentions(column: Any, contact: list[str]) -> Any:
    """Rows whose JSON `column`, as text, may mention any of `contact`: the plain form and the
    JSON-escaped one (non-ASCII letters as \\u escapes), in any letter case."""
    text_of = cast(column, Text)
    forms = set()
    for value in contact:
        forms.add(value)
        forms.add(json.dumps(value)[1:-1])
    return or_(*(text_of.icontains(form, autoescape=True) for form in sorted(forms)))


def _scrub_events(session: Session, member_id: int, contact: list[str]) -> None:
    """The member's events keep their type and ids but lose the contact. An event that carries
    a member's contact names the member (`member_id`): that is how it is found here, through an
    index, rather than by reading every event of the coalition."""
    if not contact:
        return
    found = session.execute(
        select(outbox_events.c.id, outbox_events.c.data).where(
            outbox_events.c.member_id == member_id
        )
    ).all()
    for event in found:
        clean = scrubbed(event.data, contact)
        if clean != event.data:
            session.execute(
                update(outbox_events).where(outbox_events.c.id == event.id).values(data=clean)
            )


def _scrub_idempotent_answers(session: Session, contact: list[str]) -> None:
    """A stored answer that shows the contact keeps its status but loses the contact: a retry
    replays the scrubbed answer (the key still guards its effect). Keys live a day or two
    (`idempotency.purge`), so reading them all is bounded by a day's traffic."""
    if not contact:
        return
    found = session.execute(
        select(idempotency_keys.c.id, idempotency_keys.c.response).where(
            _mentions(idempotency_keys.c.response, contact)
        )
    ).all()
    for key in found:
        session.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.id == key.id)
            .values(response=scrubbed(key.response, contact))
        )
