"""Which lots a debit takes (SPEC 2): soonest-expiring first, ties by the lot created first; a
clawback takes each funder's own lot of its purchase first, then the purchase's other lots,
before any other; points newly credited to a member in debt repay it first. A pending lot
(SPEC 2, Pending points) is never taken, except by a refund of its own purchase (`first`).
Planning is pure; `record` writes the consumption records and the lots' new `remaining` in two
bulk statements. `due_lots_by_member` gives the nightly jobs their bounded batch of members."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, func, insert, or_, select, update
from sqlalchemy.orm import Session

from coalition.database import table
from coalition.ledger.accounts import MemberAccount, lock_member_accounts
from coalition.ledger.models import Lot, LotConsumption

lots = table(Lot)
consumptions = table(LotConsumption)


def spendable() -> ColumnElement[bool]:
    """A lot that is not pending: awarded without a window, or confirmed since."""
    return or_(lots.c.pending_until.is_(None), lots.c.confirmed_at.is_not(None))


def pending() -> ColumnElement[bool]:
    """A lot still in its pending window: awarded with one and not confirmed yet."""
    return lots.c.pending_until.is_not(None) & lots.c.confirmed_at.is_(None)


@dataclass(frozen=True)
class OpenLot:
    id: int
    issuer_account_id: int
    remaining: int


@dataclass(frozen=True)
class Take:
    """Points taken from one lot, or (lot_id None) the part no lot could cover: debt."""

    lot_id: int | None
    issuer_account_id: int | None
    points: int


def open_lots(
    session: Session, account_id: int, points: int, first: Sequence[int] = ()
) -> list[OpenLot]:
    """The member's open spendable lots in spending order, only as many as `points` needs.
    Lots named in `first` come before all others, pending or not (a refund's own purchase
    lots); no other pending lot is ever taken."""
    preference = case((lots.c.id.in_(first), 0), else_=1) if first else None
    allowed = or_(spendable(), lots.c.id.in_(first)) if first else spendable()
    order = [c for c in (preference, lots.c.expires_at, lots.c.id) if c is not None]
    ranked = (
        select(
            lots.c.id,
            lots.c.issuer_account_id,
            lots.c.remaining,
            (func.sum(lots.c.remaining).over(order_by=order) - lots.c.remaining).label("before"),
        )
        .where(lots.c.account_id == account_id, lots.c.remaining > 0, allowed)
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.id, ranked.c.issuer_account_id, ranked.c.remaining)
        .where(ranked.c.before < points)
        .order_by(ranked.c.before)
    ).all()
    return [OpenLot(*row) for row in rows]


def plan(candidates: Sequence[OpenLot], points: int) -> list[Take]:
    """Take `points` from the candidates in order; what they cannot cover is one debt take."""
    takes: list[Take] = []
    wanted = points
    for lot in candidates:
        if wanted == 0:
            break
        taken = min(lot.remaining, wanted)
        takes.append(Take(lot.id, lot.issuer_account_id, taken))
        wanted -= taken
    if wanted:
        takes.append(Take(None, None, wanted))
    return takes


def plan_by_funder(
    candidates: Sequence[OpenLot], portions: Sequence[tuple[int | None, int]]
) -> list[list[Take]]:
    """The takes of a debit made of several portions, each with a lot of its own (a clawback:
    each funder's portion and that funder's lot of the purchase, `(lot id or None, points)`),
    one list of takes per portion. SPEC 2 and decision 5: each portion takes first from its
    own lot, so one funder's clawback never eats another funder's points; then, portion by
    portion, from what is left of the candidates in their order (the purchase's other lots,
    then the member's others); what they cannot cover is a debt take."""
    lot_of = {lot.id: lot for lot in candidates}
    left = {lot.id: lot.remaining for lot in candidates}
    pieces: list[list[Take]] = []
    wanted: list[int] = []
    for own_id, points in portions:
        own = lot_of.get(own_id) if own_id is not None else None
        taken = min(left[own.id], points) if own is not None else 0
        pieces.append([Take(own.id, own.issuer_account_id, taken)] if own and taken else [])
        if own is not None:
            left[own.id] -= taken
        wanted.append(points - taken)
    for piece, points in zip(pieces, wanted, strict=True):
        for lot in candidates:
            if points == 0:
                break
            taken = min(left[lot.id], points)
            if taken:
                piece.append(Take(lot.id, lot.issuer_account_id, taken))
                left[lot.id] -= taken
                points -= taken
        if points:
            piece.append(Take(None, None, points))
    return pieces


def debt_repaid(member: MemberAccount) -> int:
    """SPEC 2: how much of a member's debt the points just credited to it repay (its balance
    already counts them): all they can, since a member in debt has no other spendable open
    lot. Pending points repay nothing until they are confirmed (its `pending` counts them)."""
    return min(member.debt, max(member.spendable + member.debt, 0))


def repayments(
    member: MemberAccount,
    credited: Sequence[OpenLot],
    transfer_of_lot: Mapping[int, int],
    points: int,
    operator: int,
) -> list[Consumed]:
    """The consumptions that repay `points` of the member's debt from the lots just credited
    (in spending order), spent at the operator; each is recorded against the transfer that
    credited its lot."""
    takes = plan(credited, points) if points else []
    if any(t.lot_id is None or t.lot_id not in transfer_of_lot for t in takes):
        raise AssertionError("a member in debt had open lots that this operation did not credit")
    return [
        Consumed(member.id, transfer_of_lot[t.lot_id], t, "repay", operator)
        for t in takes
        if t.lot_id is not None
    ]


@dataclass(frozen=True)
class Consumed:
    """One consumption record to write."""

    member_account_id: int
    transfer_id: int
    take: Take
    kind: str
    redeemer_account_id: int
    restores_id: int | None = None


def record(session: Session, consumed: Sequence[Consumed], now: datetime) -> None:
    """Write consumption records (of one member or of a batch of members) and move the lots'
    `remaining`: down for takes, up for restores; debt takes touch no lot. Two statements
    whatever the number of records."""
    if not consumed:
        return
    connection = session.connection()
    connection.execute(
        insert(consumptions),
        [
            {
                "transfer_id": c.transfer_id,
                "lot_id": c.take.lot_id,
                "kind": "debt" if c.take.lot_id is None else c.kind,
                "points": c.take.points,
                "member_account_id": c.member_account_id,
                "issuer_account_id": c.take.issuer_account_id,
                "redeemer_account_id": c.redeemer_account_id,
                "restores_id": c.restores_id,
                "created_at": now,
            }
            for c in consumed
        ],
    )
    # A confirmation takes nothing from its lot.
    moves = [
        {"lid": c.take.lot_id, "delta": c.take.points if c.kind == "restore" else -c.take.points}
        for c in consumed
        if c.take.lot_id is not None and c.kind != "confirm"
    ]
    if moves:
        connection.execute(
            update(lots)
            .where(lots.c.id == bindparam("lid"))
            .values(remaining=lots.c.remaining + bindparam("delta")),
            moves,
        )


def due_lots_by_member(
    session: Session, due: list[ColumnElement[bool]], limit: int
) -> tuple[dict[int, MemberAccount], dict[int, list[Any]]]:
    """The members (by account id) of up to `limit` accounts holding lots that meet `due`,
    locked in ascending id order, and those lots read again under the locks (a redemption may
    have spent some meanwhile, a refund cancelled them, another run done them), by account, in
    spending order. The nightly jobs' way to work a bounded batch of members: expiry, its
    notices, confirmation of pending points."""
    account_ids = (
        session.execute(
            select(lots.c.account_id)
            .where(*due)
            .group_by(lots.c.account_id)
            .order_by(lots.c.account_id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    if not account_ids:
        return {}, {}
    members = lock_member_accounts(session, account_ids)
    rows = session.execute(
        select(
            lots.c.id,
            lots.c.account_id,
            lots.c.issuer_account_id,
            lots.c.transfer_id,
            lots.c.remaining,
            lots.c.expires_at,
            lots.c.pending_until,
            lots.c.confirmed_at,
        )
        .where(lots.c.account_id.in_(account_ids), *due)
        .order_by(lots.c.account_id, lots.c.expires_at, lots.c.id)
    ).all()
    by_account: dict[int, list[Any]] = defaultdict(list)
    for lot in rows:
        by_account[lot.account_id].append(lot)
    return members, by_account
