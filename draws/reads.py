"""What the draws' pages and API read (SPEC 3.3, 3.4): a draw as the public sees it (its seed,
entries and winners only once closed), the operator's list, a member's own entries, and the
counts the close freezes. Nothing here writes.

Free entries are counted from the ledger (`free_entries_query`): one per purchase (`earn`) at a
partner of the draw, recorded while it was open (from its opening to its close), in the draw's
currency, of at least the draw's amount after the refunds made of it before the close. Only
active members count (a blocked or erased member is left out of the list)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from coalition import tenancy
from coalition.database import table
from coalition.errors import NotFound
from coalition.ids import is_public_id
from coalition.ledger.models import Account, Transaction
from coalition.members.models import Member
from draws.models import draw_entrants, draw_entries, draw_partners, draws
from merchants.models import Merchant

transactions = table(Transaction)
accounts = table(Account)
members = table(Member)
merchants = table(Merchant)

DRAW_ID = draws.c.id


@dataclass(frozen=True)
class DrawView:
    """A draw as SPEC 3.3 shapes it; `seed`, `entries_hash`, `entries` and `winners` are None
    until it is closed."""

    id: str
    prize: str
    entry_points: int | None
    closes_at: datetime
    winners_count: int
    seed_hash: str
    entries_count: int
    status: str
    created_at: datetime
    free_entries: dict[str, Any] | None
    closed_at: datetime | None = None
    seed: str | None = None
    entries_hash: str | None = None
    winners: list[str] | None = None
    entries: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def closed(self) -> bool:
        return self.status == "closed"

    def as_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "id": self.id,
            "prize": self.prize,
            "entry_points": self.entry_points,
            "closes_at": self.closes_at,
            "winners_count": self.winners_count,
            "seed_hash": self.seed_hash,
            "entries_count": self.entries_count,
            "status": self.status,
            "free_entries": self.free_entries,
        }
        if self.closed:
            shown.update(
                closed_at=self.closed_at,
                seed=self.seed,
                entries_hash=self.entries_hash,
                entries=self.entries,
                winners=self.winners,
            )
        return shown

    def audit_fields(self) -> dict[str, Any]:
        return {
            "prize": self.prize,
            "entry_points": self.entry_points,
            "closes_at": self.closes_at,
            "winners_count": self.winners_count,
            "seed_hash": self.seed_hash,
            "free_entries": self.free_entries,
        }

    def event_fields(self) -> dict[str, Any]:
        """The closed draw in an event: what the API shows of it but the (long) entries list."""
        shown = self.as_dict()
        shown.pop("entries", None)
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in shown.items()}


def _row(session: Session, public_id: str) -> Any:
    if not is_public_id(public_id, "drw"):
        raise NotFound("no such draw")
    row = session.execute(select(draws).where(draws.c.public_id == public_id)).one_or_none()
    if row is None:
        raise NotFound("no such draw")
    return row


def _free_rule(session: Session, row: Any) -> dict[str, Any] | None:
    if row.free_entry_min_amount_minor is None:
        return None
    partners = session.execute(
        select(merchants.c.public_id, merchants.c.name)
        .join(draw_partners, draw_partners.c.merchant_id == merchants.c.id)
        .where(draw_partners.c.draw_id == row.id)
        .order_by(merchants.c.name, merchants.c.public_id)
    ).all()
    return {
        "merchants": [{"id": p.public_id, "name": p.name} for p in partners],
        "min_amount": {"amount": row.free_entry_min_amount_minor, "currency": row.currency},
    }


def free_entries_query(row: Any, cutoff: datetime) -> Select[Any]:
    """Per member (`member_id`, `entries`): its free entries in the draw `row` up to `cutoff`.
    Needs the system's eyes on the ledger (row-level security)."""
    t = transactions
    refunds = transactions.alias("refunds")
    refunded = (
        select(func.coalesce(func.sum(refunds.c.amount_minor), 0))
        .where(
            refunds.c.original_id == t.c.id,
            refunds.c.type == "refund",
            refunds.c.created_at < cutoff,
        )
        .scalar_subquery()
    )
    partners = select(draw_partners.c.merchant_id).where(draw_partners.c.draw_id == row.id)
    return (
        select(accounts.c.member_id, func.count().label("entries"))
        .select_from(t)
        .join(accounts, accounts.c.id == t.c.member_account_id)
        .where(
            t.c.type == "earn",
            t.c.merchant_id.in_(partners),
            t.c.created_at >= row.created_at,
            t.c.created_at < cutoff,
            t.c.currency == row.currency,
            t.c.amount_minor - refunded >= row.free_entry_min_amount_minor,
        )
        .group_by(accounts.c.member_id)
    )


def _active_only(query: Select[Any], member_column: Any) -> Select[Any]:
    active = select(members.c.id).where(members.c.status == "active")
    return query.where(member_column.in_(active))


def entries_by_member(session: Session, row: Any, cutoff: datetime) -> dict[int, tuple[int, int]]:
    """Per active member: (paid, free) entries in the draw up to `cutoff`; members with none
    are absent."""
    paid_rows = session.execute(
        _active_only(
            select(draw_entries.c.member_id, func.sum(draw_entries.c.entries))
            .where(draw_entries.c.draw_id == row.id)
            .group_by(draw_entries.c.member_id),
            draw_entries.c.member_id,
        )
    ).all()
    counted = {member: (int(paid), 0) for member, paid in paid_rows}
    if row.free_entry_min_amount_minor is not None:
        query = free_entries_query(row, cutoff)
        for member, free in session.execute(_active_only(query, accounts.c.member_id)).all():
            counted[member] = (counted.get(member, (0, 0))[0], int(free))
    return counted


def _live_count(session: Session, row: Any, now: datetime) -> int:
    """An open draw's entries so far (paid, and free earned up to now), summed by the database."""
    paid = _active_only(
        select(func.coalesce(func.sum(draw_entries.c.entries), 0)).where(
            draw_entries.c.draw_id == row.id
        ),
        draw_entries.c.member_id,
    )
    total = int(session.execute(paid).scalar_one())
    if row.free_entry_min_amount_minor is not None:
        per_member = _active_only(
            free_entries_query(row, min(row.closes_at, now)), accounts.c.member_id
        ).subquery()
        with tenancy.acting_as(tenancy.SYSTEM, session):
            free = select(func.coalesce(func.sum(per_member.c.entries), 0))
            total += int(session.execute(free).scalar_one())
    return total


def _view(session: Session, row: Any, now: datetime, with_entries: bool = True) -> DrawView:
    free = _free_rule(session, row)
    common: dict[str, Any] = {
        "id": row.public_id,
        "prize": row.prize,
        "entry_points": row.entry_points,
        "closes_at": row.closes_at,
        "winners_count": row.winners_count,
        "seed_hash": row.seed_hash,
        "status": row.status,
        "created_at": row.created_at,
        "free_entries": free,
    }
    if row.status != "closed":
        return DrawView(**common, entries_count=_live_count(session, row, now))
    entries = None
    if with_entries:
        listed = session.execute(
            select(
                draw_entrants.c.entrant, draw_entrants.c.paid_entries, draw_entrants.c.free_entries
            )
            .where(draw_entrants.c.draw_id == row.id)
            .order_by(draw_entrants.c.entrant)
        ).all()
        entries = [
            {"entrant": e.entrant, "entries": e.paid_entries + e.free_entries} for e in listed
        ]
    return DrawView(
        **common,
        entries_count=row.entries_count,
        closed_at=row.closed_at,
        seed=row.seed,
        entries_hash=row.entries_hash,
        winners=list(row.winners),
        entries=entries,
    )


def draw(session: Session, public_id: str, now: datetime, with_entries: bool = True) -> DrawView:
    """A draw as anyone may see it; unknown: `NotFound`."""
    return _view(session, _row(session, public_id), now, with_entries)


def canonical_entries(session: Session, public_id: str) -> list[tuple[str, int]]:
    """A closed draw's list as the procedure takes it; an open draw has none yet (`NotFound`)."""
    row = _row(session, public_id)
    if row.status != "closed":
        raise NotFound("the draw is still open: its entries list is published at the close")
    listed = session.execute(
        select(draw_entrants.c.entrant, draw_entrants.c.paid_entries + draw_entrants.c.free_entries)
        .where(draw_entrants.c.draw_id == row.id)
        .order_by(draw_entrants.c.entrant)
    ).all()
    return [(entrant, int(count)) for entrant, count in listed]


def all_draws() -> Select[Any]:
    """Every draw, for `web.api.paginate` on `DRAW_ID` (newest first)."""
    return select(draws)


def listing(session: Session, rows: Sequence[Any], now: datetime) -> list[DrawView]:
    return [_view(session, row, now, with_entries=False) for row in rows]


def summary(session: Session, row: Any, now: datetime) -> dict[str, Any]:
    """A row of `all_draws` as the operator's API lists it (without the entries list)."""
    return _view(session, row, now, with_entries=False).as_dict()


def page(session: Session, number: int, size: int, now: datetime) -> tuple[list[DrawView], bool]:
    """The operator's list: newest first, a page at a time (1-based)."""
    rows = session.execute(
        select(draws).order_by(draws.c.id.desc()).limit(size + 1).offset((number - 1) * size)
    ).all()
    return listing(session, rows[:size], now), len(rows) > size


def open_draws(session: Session, now: datetime) -> list[DrawView]:
    """The draws a member may still enter, closing soonest first (at most 50)."""
    rows = session.execute(
        select(draws)
        .where(draws.c.status == "open", draws.c.closes_at > now)
        .order_by(draws.c.closes_at, draws.c.id)
        .limit(50)
    ).all()
    return listing(session, rows, now)


@dataclass(frozen=True)
class MyDraw:
    """A member's part in a draw: its entries, and once closed its pseudonym and whether it
    won."""

    draw: DrawView
    paid_entries: int
    free_entries: int
    entrant: str | None = None
    won: bool = False


def my_draws(session: Session, member_id: int, now: datetime) -> list[MyDraw]:
    """The draws the member took part in (paid entries, or in a closed list), newest first, and
    the open draws where it earned free entries so far (at most 50)."""
    paid = dict(
        session.execute(
            select(draw_entries.c.draw_id, func.sum(draw_entries.c.entries))
            .where(draw_entries.c.member_id == member_id)
            .group_by(draw_entries.c.draw_id)
        ).all()
    )
    listed = {
        e.draw_id: e
        for e in session.execute(
            select(draw_entrants).where(draw_entrants.c.member_id == member_id)
        ).all()
    }
    open_free = session.execute(
        select(draws).where(
            draws.c.status == "open", draws.c.free_entry_min_amount_minor.is_not(None)
        )
    ).all()
    found: dict[int, MyDraw] = {}
    with tenancy.acting_as(tenancy.SYSTEM, session):
        for row in open_free:
            query = free_entries_query(row, min(row.closes_at, now)).where(
                accounts.c.member_id == member_id
            )
            free = session.execute(query).first()
            if free is not None or row.id in paid:
                found[row.id] = MyDraw(
                    _view(session, row, now, False),
                    int(paid.get(row.id, 0)),
                    int(free.entries) if free else 0,
                )
    wanted = (set(paid) | set(listed)) - set(found)
    rows = session.execute(select(draws).where(draws.c.id.in_(sorted(wanted)))).all()
    for row in rows:
        entrant = listed.get(row.id)
        if entrant is not None:
            found[row.id] = MyDraw(
                _view(session, row, now, False),
                entrant.paid_entries,
                entrant.free_entries,
                entrant.entrant,
                entrant.entrant in (row.winners or []),
            )
        else:
            found[row.id] = MyDraw(_view(session, row, now, False), int(paid[row.id]), 0)
    return [found[k] for k in sorted(found, reverse=True)][:50]


def due(session: Session, now: datetime, limit: int) -> list[str]:
    """Open draws whose closing time has come, soonest first."""
    return list(
        session.execute(
            select(draws.c.public_id)
            .where(draws.c.status == "open", draws.c.closes_at <= now)
            .order_by(draws.c.closes_at, draws.c.id)
            .limit(limit)
        ).scalars()
    )


def active_merchants(session: Session, public_ids: Sequence[str]) -> dict[str, int]:
    """Of these merchant ids, the active merchants' (public id -> row id)."""
    wanted = [p for p in public_ids if is_public_id(p, "mer")]
    if not wanted:
        return {}
    rows = session.execute(
        select(merchants.c.public_id, merchants.c.id).where(
            merchants.c.public_id.in_(wanted), merchants.c.status == "active"
        )
    ).all()
    return {row.public_id: row.id for row in rows}


def merchant_choices(session: Session) -> list[tuple[str, str]]:
    """Active merchants (public id, name) by name, for the opening form (at most 500)."""
    rows = session.execute(
        select(merchants.c.public_id, merchants.c.name)
        .where(merchants.c.status == "active")
        .order_by(merchants.c.name, merchants.c.public_id)
        .limit(500)
    ).all()
    return [(row.public_id, row.name) for row in rows]


def member_public_ids(session: Session, member_ids: Sequence[int]) -> dict[int, str]:
    if not member_ids:
        return {}
    rows = session.execute(
        select(members.c.id, members.c.public_id).where(members.c.id.in_(sorted(set(member_ids))))
    ).all()
    return {row.id: row.public_id for row in rows}


def transaction_row_id(session: Session, public_id: str) -> int:
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return int(
            session.execute(
                select(transactions.c.id).where(transactions.c.public_id == public_id)
            ).scalar_one()
        )
