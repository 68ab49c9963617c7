"""Prize draws in the domain's words (SPEC 2): open one, enter it with points, close it. Each
operation works in the caller's transaction and the caller commits.

- Opening draws the seed with `secrets` and keeps it until the close; `seed_hash` is public.
- An entry paid with points is a redemption at the operator (purpose `draw_entry`): the one
  ledger call is `_pay_at_operator`. It is refused once the draw is closed or its closing time
  has come (`DrawClosed`), even before the job has closed it.
- Closing (`close`) is idempotent: a closed draw is returned as it is. Under the draw's row
  lock it freezes the list (paid entries summed, free entries counted from the ledger's
  purchases, `reads.free_entries_query`), gives each member a fresh pseudonym, hashes the list,
  computes the winners (`draws.procedure`), reveals the seed and tells each winner
  (`draw.closed`). Entries take a shared lock on the same row, so none slips in after the list
  is counted."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from coalition import audit, outbox, tenancy
from coalition.errors import CoalitionError, InvalidRequest, NotFound
from coalition.ids import is_public_id, new_id
from coalition.ledger import operations
from coalition.ledger.rows import MAX_POINTS, Actor
from coalition.members import reads as member_reads
from draws import procedure, reads
from draws.models import draw_entrants, draw_entries, draw_partners, draws

MAX_PRIZE = 200
MAX_WINNERS = 100
MAX_ENTRIES_PER_CALL = 100
MAX_PARTNERS = 50
# How far ahead a draw may close.
MAX_OPEN = timedelta(days=366)
# Closing a draw writes one row per entrant; the job closes this many draws per transaction.
CLOSE_BATCH = 10


class DrawClosed(CoalitionError):
    status, code, title = 409, "draw_closed", "The draw is closed"


class NoPaidEntries(CoalitionError):
    status, code, title = 409, "no_paid_entries", "This draw is not entered with points"


@dataclass(frozen=True)
class FreeEntries:
    """One free entry per purchase of at least `min_amount_minor` (in `currency`) at one of
    `merchants` (public ids) while the draw is open."""

    merchants: Sequence[str]
    min_amount_minor: int
    currency: str


@dataclass(frozen=True)
class Entered:
    """What an entry call did: the entries bought, their points and the redemption."""

    draw: str
    entries: int
    points: int
    transaction: str
    my_paid_entries: int
    balance: int
    available: int


def _check_draw(
    prize: str,
    entry_points: int | None,
    closes_at: datetime,
    winners_count: int,
    free: FreeEntries | None,
    now: datetime,
) -> str:
    prize = prize.strip()
    errors: dict[str, list[str]] = {}
    if not prize or len(prize) > MAX_PRIZE:
        errors["prize"] = [f"from 1 to {MAX_PRIZE} characters"]
    if entry_points is not None and not 1 <= entry_points <= MAX_POINTS:
        errors["entry_points"] = [f"a whole number from 1 to {MAX_POINTS}, or null"]
    if not now < closes_at <= now + MAX_OPEN:
        errors["closes_at"] = ["in the future, within a year"]
    if not 1 <= winners_count <= MAX_WINNERS:
        errors["winners_count"] = [f"from 1 to {MAX_WINNERS}"]
    if entry_points is None and free is None:
        errors["entry_points"] = ["a draw takes points, free entries or both; give one"]
    if free is not None and not 1 <= len(set(free.merchants)) <= MAX_PARTNERS:
        errors["free_entries"] = [f"from 1 to {MAX_PARTNERS} partners"]
    if errors:
        raise InvalidRequest("the draw cannot be opened as asked", errors=errors)
    return prize


def _partner_ids(session: Session, free: FreeEntries, coalition_currency: str) -> list[int]:
    if free.currency != coalition_currency:
        raise InvalidRequest(
            f"the coalition settles in {coalition_currency}",
            errors={"free_entries": [f"min_amount must be in {coalition_currency}"]},
        )
    wanted = sorted(set(free.merchants))
    found = reads.active_merchants(session, wanted)
    missing = [m for m in wanted if m not in found]
    if missing:
        raise InvalidRequest(
            "free entries need active partners",
            errors={"free_entries": [f"not an active merchant: {m}" for m in missing]},
        )
    return sorted(found.values())


def open_draw(
    session: Session,
    *,
    prize: str,
    entry_points: int | None,
    closes_at: datetime,
    winners_count: int,
    free: FreeEntries | None,
    coalition_currency: str,
    actor: audit.Actor,
    now: datetime,
) -> reads.DrawView:
    """Open a draw: a fresh 32-byte seed, kept secret, and its public hash. Audited."""
    prize = _check_draw(prize, entry_points, closes_at, winners_count, free, now)
    partners = _partner_ids(session, free, coalition_currency) if free is not None else []
    seed = secrets.token_bytes(procedure.SEED_BYTES)
    public_id = new_id("drw")
    [draw_id] = session.execute(
        draws.insert()
        .values(
            public_id=public_id,
            prize=prize,
            entry_points=entry_points,
            free_entry_min_amount_minor=free.min_amount_minor if free else None,
            currency=free.currency if free else None,
            closes_at=closes_at,
            winners_count=winners_count,
            status="open",
            seed=seed.hex(),
            seed_hash=procedure.seed_hash(seed),
            created_at=now,
        )
        .returning(draws.c.id)
    ).one()
    if partners:
        session.execute(
            draw_partners.insert(), [{"draw_id": draw_id, "merchant_id": m} for m in partners]
        )
    view = reads.draw(session, public_id, now)
    audit.record(
        session, actor, "draw.opened", "draw", public_id, after=view.audit_fields(), now=now
    )
    return view


def _locked(session: Session, public_id: str, *, shared: bool) -> Any:
    """The draw's row under a lock: shared for an entry, exclusive for the close."""
    if not is_public_id(public_id, "drw"):
        raise NotFound("no such draw")
    query = select(draws).where(draws.c.public_id == public_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(read=shared)
    row = session.execute(query).one_or_none()
    if row is None:
        raise NotFound("no such draw")
    return row


def _pay_at_operator(
    session: Session, *, member_id: int, points: int, reason: str, actor: Actor, now: datetime
) -> dict[str, Any]:
    """The entries' points, redeemed at the operator (purpose `draw_entry`): the ledger's one
    redemption path, as the system (the row names no merchant, which no tenant but the
    operator's may write; the caller's rights were checked before). It writes no event: an
    entry is the member's business (decision 283)."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return operations.redeem(
            session,
            member_id=member_id,
            merchant_id=None,
            points=points,
            actor=actor,
            now=now,
            reason=reason,
            purpose="draw_entry",
        )


def enter(
    session: Session,
    *,
    draw_id: str,
    member_id: int,
    entries: int,
    actor: Actor,
    now: datetime,
) -> Entered:
    """Buy `entries` entries with points: a redemption at the operator of entries x the entry
    price. Refused for a closed draw or one past its closing time (`DrawClosed`), a free-only
    draw (`NoPaidEntries`), or too few points (`insufficient_points`)."""
    if isinstance(entries, bool) or not 1 <= entries <= MAX_ENTRIES_PER_CALL:
        raise InvalidRequest(
            f"from 1 to {MAX_ENTRIES_PER_CALL} entries at a time",
            errors={"count": [f"from 1 to {MAX_ENTRIES_PER_CALL}"]},
        )
    member_reads.ensure_active(session, member_id)
    row = _locked(session, draw_id, shared=True)
    if row.status != "open" or now >= row.closes_at:
        raise DrawClosed("the draw is closed: no more entries")
    if row.entry_points is None:
        raise NoPaidEntries("this draw is entered only by purchases at its partners")
    points = row.entry_points * entries
    paid = _pay_at_operator(
        session,
        member_id=member_id,
        points=points,
        reason=f"{entries} entries in draw {draw_id}",
        actor=actor,
        now=now,
    )
    transaction_public_id = paid["transaction"]["id"]
    session.execute(
        draw_entries.insert().values(
            draw_id=row.id,
            member_id=member_id,
            entries=entries,
            points=points,
            transaction_id=reads.transaction_row_id(session, transaction_public_id),
            created_at=now,
        )
    )
    mine = session.execute(
        select(func.coalesce(func.sum(draw_entries.c.entries), 0)).where(
            draw_entries.c.draw_id == row.id, draw_entries.c.member_id == member_id
        )
    ).scalar_one()
    return Entered(
        draw=draw_id,
        entries=entries,
        points=points,
        transaction=transaction_public_id,
        my_paid_entries=int(mine),
        balance=paid["member"]["balance"],
        available=paid["member"]["available"],
    )


def _new_pseudonyms(count: int) -> list[str]:
    """`count` distinct fresh pseudonyms (96 random bits each)."""
    made: set[str] = set()
    while len(made) < count:
        made.add(secrets.token_hex(12))
    return list(made)


def close(
    session: Session, draw_id: str, *, now: datetime, actor: audit.Actor | None
) -> reads.DrawView:
    """Close the draw now (the job at its closing time, or the operator earlier): freeze the
    list, draw the winners, reveal the seed. A closed draw is returned unchanged. `actor`: the
    operator who closed it (audited), None for the job."""
    row = _locked(session, draw_id, shared=False)
    if row.status == "closed":
        return reads.draw(session, draw_id, now)
    cutoff = min(row.closes_at, now)
    with tenancy.acting_as(tenancy.SYSTEM, session):
        counted = reads.entries_by_member(session, row, cutoff)
    members = sorted(counted)
    names = _new_pseudonyms(len(members))
    listed = [
        {
            "draw_id": row.id,
            "member_id": member,
            "entrant": name,
            "paid_entries": counted[member][0],
            "free_entries": counted[member][1],
        }
        for member, name in zip(members, names, strict=True)
    ]
    if listed:
        session.execute(draw_entrants.insert(), listed)
    entries = [(e["entrant"], e["paid_entries"] + e["free_entries"]) for e in listed]
    winners = procedure.winners(bytes.fromhex(row.seed), entries, row.winners_count)
    session.execute(
        update(draws)
        .where(draws.c.id == row.id, draws.c.status == "open")
        .values(
            status="closed",
            closed_at=now,
            entries_hash=procedure.entries_hash(entries),
            entries_count=sum(count for _, count in entries),
            winners=winners,
        )
    )
    view = reads.draw(session, draw_id, now)
    member_of = {e["entrant"]: e["member_id"] for e in listed}
    public_ids = reads.member_public_ids(session, [member_of[w] for w in winners])
    summary = view.event_fields()
    outbox.record(
        session,
        [
            outbox.event_row(
                "draw.closed",
                {
                    "draw": summary,
                    "member": {"id": public_ids[member_of[winner]]},
                    "entrant": winner,
                    "place": place,
                },
                now,
                member_id=member_of[winner],
            )
            for place, winner in enumerate(winners, start=1)
        ],
    )
    if actor is not None:
        audit.record(
            session,
            actor,
            "draw.closed",
            "draw",
            draw_id,
            before={"status": "open"},
            after={"status": "closed", "entries_count": view.entries_count, "winners": winners},
            now=now,
        )
    return view


def close_due(session: Session, now: datetime, limit: int = CLOSE_BATCH) -> list[str]:
    """Close up to `limit` open draws whose closing time has come, oldest first (the job)."""
    due = reads.due(session, now, limit)
    for public_id in due:
        close(session, public_id, now=now, actor=None)
    return due
