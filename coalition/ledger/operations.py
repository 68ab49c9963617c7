"""The ledger operations (SPEC 2): award, redeem, hold / capture / void, refund clawback,
reversal, expiry.

Each takes a session and plain values, runs inside the caller's database transaction, locks the
member account it changes (the only row it updates besides that member's lots and holds), writes
its transaction, transfers, lot consumptions and outbox events with bulk statements, and returns
a plain dict. Refusals raise `coalition.errors` exceptions before anything is written."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.orm import Session

from coalition import outbox
from coalition.database import table
from coalition.errors import (
    AlreadyReversed,
    HoldNotActive,
    InsufficientPoints,
    InvalidRequest,
    NotFound,
    RefundExceedsPurchase,
)
from coalition.ids import new_id
from coalition.ledger import lots as lotplan
from coalition.ledger.accounts import (
    MemberAccount,
    lock_member,
    lock_member_accounts,
    merchant_account_id,
    operator_account_id,
    store_balances,
)
from coalition.ledger.models import LOT_SOURCES, Hold, Lot, LotConsumption, Transaction, Transfer
from coalition.ledger.rows import check_amount, check_points, insert_returning_ids, transfer_row

transactions = table(Transaction)
transfers = table(Transfer)
lots = table(Lot)
consumptions = table(LotConsumption)
holds = table(Hold)

ACTOR_TYPES = ("merchant_client", "member", "operator_user", "job", "system")
# SPEC 2: a hold lasts 15 minutes unless the request asks for up to 7 days.
HOLD_DEFAULT_TTL = timedelta(minutes=15)
HOLD_MAX_TTL = timedelta(days=7)


@dataclass(frozen=True)
class Actor:
    """Who caused an operation: a merchant's client, a member, an operator user, or a job."""

    type: str
    id: str | None = None

    def __post_init__(self) -> None:
        if self.type not in ACTOR_TYPES:
            raise ValueError(f"unknown actor type {self.type!r}")


def _new_transaction(
    session: Session,
    *,
    type: str,
    member: MemberAccount,
    merchant_id: int | None,
    points: int,
    actor: Actor,
    reason: str,
    now: datetime,
    **columns: Any,
) -> tuple[int, str]:
    public_id = new_id("txn")
    row = {
        "public_id": public_id,
        "type": type,
        "member_account_id": member.id,
        "merchant_id": merchant_id,
        "points": points,
        "actor_type": actor.type,
        "actor_id": actor.id,
        "reason": reason,
        "created_at": now,
        **columns,
    }
    return insert_returning_ids(session, transactions, [row])[0], public_id


def held_points_of(
    account_id: Any, now: datetime, dialect: str, excluding: int | None = None
) -> ColumnElement[Any]:
    """An expression for the points reserved by a member's unexpired active holds, at any
    merchant (`account_id` a value or a column). On PostgreSQL row-level security hides other
    merchants' holds, so a database function sums them as the system."""
    if dialect == "postgresql":
        return func.coalition_held_points(account_id, now, excluding)
    query = select(func.coalesce(func.sum(holds.c.points), 0)).where(
        holds.c.account_id == account_id, holds.c.status == "active", holds.c.expires_at > now
    )
    if excluding is not None:
        query = query.where(holds.c.id != excluding)
    return query.scalar_subquery()


def held_points(
    session: Session, account_id: int, now: datetime, excluding: int | None = None
) -> int:
    """Points reserved by the member's unexpired active holds, at any merchant."""
    dialect = session.get_bind().dialect.name
    return int(
        session.execute(select(held_points_of(account_id, now, dialect, excluding))).scalar_one()
    )


def _relock(session: Session, member_id: int, locked: MemberAccount | None) -> MemberAccount:
    """The member's locked account: the one the caller locked already, or lock it now."""
    if locked is None:
        return lock_member(session, member_id)
    if locked.member_id != member_id:
        raise ValueError("the locked account is not this member's")
    return locked


def _member_view(member: MemberAccount, held: int) -> dict[str, int]:
    return {
        "balance": member.balance,
        "available": max(member.balance - held, 0),
        "debt": member.debt,
    }


def _repay_debt(
    session: Session,
    member: MemberAccount,
    operator: int,
    transfer_of_lot: dict[int, int],
    now: datetime,
) -> int:
    """SPEC 2: points newly credited to a member in debt repay the debt first: the lots that
    were just credited (the only open ones while a debt exists) are spent at the operator."""
    if member.debt == 0 or member.balance + member.debt <= 0:
        return 0
    repaid = min(member.debt, member.balance + member.debt)
    candidates = lotplan.open_lots(session, member.id, repaid)
    takes = lotplan.plan(candidates, repaid)
    if any(t.lot_id is None or t.lot_id not in transfer_of_lot for t in takes):
        raise AssertionError("a member in debt had open lots that this operation did not credit")
    lotplan.record(
        session,
        [
            lotplan.Consumed(member.id, transfer_of_lot[t.lot_id], t, "repay", operator)
            for t in takes
            if t.lot_id is not None
        ],
        now,
    )
    member.debt -= repaid
    return repaid


def award(
    session: Session,
    *,
    member_id: int,
    merchant_id: int,
    parts: dict[str, int],
    expires_at: datetime,
    amount_minor: int,
    currency: str,
    actor: Actor,
    now: datetime,
    external_id: str | None = None,
    breakdown: dict[str, int] | None = None,
    occurred_at: datetime | None = None,
    reason: str = "purchase",
    welcome_bonus: int = 0,
    locked: MemberAccount | None = None,
) -> dict[str, Any]:
    """Points for a purchase. `parts` maps each funder's share to points: `merchant` (base,
    campaign and stamp points, funded by the merchant) and the operator-funded `tier` and
    `welcome`. Each non-zero part becomes its own transfer and lot, the merchant's first.

    `welcome_bonus` points are added as the `welcome` part if this is the member's first
    purchase anywhere in the coalition (decided under the member's lock, so only once); every
    award marks the member welcomed, whatever the bonus, since only a first may carry it.

    `locked`: the member's account, when the caller already holds its lock (it checked
    something under it first, such as an external id)."""
    unknown = set(parts) - set(LOT_SOURCES)
    if unknown:
        raise InvalidRequest(f"unknown award parts: {', '.join(sorted(unknown))}")
    for source, points in parts.items():
        check_points(points, f"{source} points", allow_zero=True)
    check_points(welcome_bonus, "welcome bonus", allow_zero=True)
    check_amount(amount_minor, "amount", 0)
    if expires_at <= now:
        raise InvalidRequest("points must expire after they are awarded")

    member = _relock(session, member_id, locked)
    if welcome_bonus and not member.welcomed:
        parts = {**parts, "welcome": parts.get("welcome", 0) + welcome_bonus}
        if breakdown is not None:
            breakdown = {**breakdown, "welcome": breakdown.get("welcome", 0) + welcome_bonus}
    # SPEC 2: only the first purchase anywhere may carry the bonus, whatever the bonus was
    # then, so a first purchase under a bonus of 0 uses up the member's welcome too.
    member.welcomed = True
    total = sum(parts.values())
    operator = operator_account_id(session)
    issuer_of = {"merchant": merchant_account_id(session, merchant_id)}
    transaction_id, public_id = _new_transaction(
        session,
        type="earn",
        member=member,
        merchant_id=merchant_id,
        points=total,
        actor=actor,
        reason=reason,
        now=now,
        amount_minor=amount_minor,
        currency=currency,
        external_id=external_id,
        breakdown=breakdown or dict(parts),
        occurred_at=occurred_at,
    )
    # SPEC 2: within one award the merchant-funded lot is created before operator-funded ones.
    funded = [(s, parts[s]) for s in LOT_SOURCES if parts.get(s, 0) > 0]
    transfer_ids = insert_returning_ids(
        session,
        transfers,
        [
            transfer_row(transaction_id, "award", issuer_of.get(s, operator), member.id, p, now)
            for s, p in funded
        ],
    )
    lot_ids = insert_returning_ids(
        session,
        lots,
        [
            {
                "account_id": member.id,
                "issuer_account_id": issuer_of.get(s, operator),
                "transfer_id": tid,
                "source": s,
                "points": p,
                "remaining": p,
                "expires_at": expires_at,
                "created_at": now,
            }
            for (s, p), tid in zip(funded, transfer_ids, strict=True)
        ],
    )
    member.balance += total
    repaid = _repay_debt(
        session, member, operator, dict(zip(lot_ids, transfer_ids, strict=True)), now
    )
    store_balances(session, [member])

    transaction = {
        "id": public_id,
        "type": "earn",
        "points": total,
        "breakdown": breakdown or dict(parts),
        "debt_repaid": repaid,
    }
    outbox.record(
        session,
        [
            outbox.event_row(
                "purchase.created",
                {"transaction": transaction},
                now,
                merchant_id=merchant_id,
                member_id=member.member_id,
            )
        ],
    )
    # An award changes no hold, so the purchase's answer spares the hot path that query.
    return {"transaction": transaction, "member": {"balance": member.balance, "debt": member.debt}}


def _spend(
    session: Session,
    member: MemberAccount,
    *,
    merchant_id: int,
    points: int,
    held_elsewhere: int,
    actor: Actor,
    now: datetime,
    reason: str,
    external_id: str | None,
    hold_id: int | None,
) -> tuple[int, str]:
    """A redemption of `points` at `merchant_id` by a locked member."""
    available = member.balance - held_elsewhere
    if points > available:
        raise InsufficientPoints(
            f"the member has {max(available, 0)} points available, {points} were asked for",
            available=max(available, 0),
        )
    redeemer = merchant_account_id(session, merchant_id)
    transaction_id, public_id = _new_transaction(
        session,
        type="redeem",
        member=member,
        merchant_id=merchant_id,
        points=points,
        actor=actor,
        reason=reason,
        now=now,
        external_id=external_id,
        hold_id=hold_id,
    )
    [transfer_id] = insert_returning_ids(
        session,
        transfers,
        [transfer_row(transaction_id, "redeem", member.id, redeemer, points, now)],
    )
    takes = lotplan.plan(lotplan.open_lots(session, member.id, points), points)
    if any(t.lot_id is None for t in takes):
        raise AssertionError("the member's open lots do not cover its balance")
    lotplan.record(
        session,
        [lotplan.Consumed(member.id, transfer_id, t, "redeem", redeemer) for t in takes],
        now,
    )
    member.balance -= points
    store_balances(session, [member])
    return transaction_id, public_id


def redeem(
    session: Session,
    *,
    member_id: int,
    merchant_id: int,
    points: int,
    actor: Actor,
    now: datetime,
    external_id: str | None = None,
    reason: str = "redemption",
    locked: MemberAccount | None = None,
) -> dict[str, Any]:
    """Spend points at a merchant, soonest-expiring lots first. Refused with
    `insufficient_points` when the available balance (balance less active holds) is short.
    `locked`: as for `award`."""
    check_points(points)
    member = _relock(session, member_id, locked)
    held = held_points(session, member.id, now)
    _, public_id = _spend(
        session,
        member,
        merchant_id=merchant_id,
        points=points,
        held_elsewhere=held,
        actor=actor,
        now=now,
        reason=reason,
        external_id=external_id,
        hold_id=None,
    )
    transaction = {"id": public_id, "type": "redeem", "points": points}
    outbox.record(
        session,
        [
            outbox.event_row(
                "redemption.created",
                {"transaction": transaction},
                now,
                merchant_id=merchant_id,
                member_id=member.member_id,
            )
        ],
    )
    return {"transaction": transaction, "member": _member_view(member, held)}


def place_hold(
    session: Session,
    *,
    member_id: int,
    merchant_id: int,
    points: int,
    now: datetime,
    ttl: timedelta = HOLD_DEFAULT_TTL,
    locked: MemberAccount | None = None,
) -> dict[str, Any]:
    """Reserve points for a later capture. Moves no points; lowers what is available.
    `locked`: as for `award`."""
    check_points(points)
    if not timedelta(0) < ttl <= HOLD_MAX_TTL:
        raise InvalidRequest("a hold lasts more than 0 seconds and at most 7 days")
    member = _relock(session, member_id, locked)
    held = held_points(session, member.id, now)
    if points > member.balance - held:
        available = max(member.balance - held, 0)
        raise InsufficientPoints(
            f"the member has {available} points available, {points} were asked for",
            available=available,
        )
    public_id = new_id("hold")
    insert_returning_ids(
        session,
        holds,
        [
            {
                "public_id": public_id,
                "account_id": member.id,
                "merchant_id": merchant_id,
                "points": points,
                "status": "active",
                "expires_at": now + ttl,
                "created_at": now,
            }
        ],
    )
    hold = {
        "id": public_id,
        "points": points,
        "status": "active",
        "expires_at": (now + ttl).isoformat(),
    }
    return {"hold": hold, "member": _member_view(member, held + points)}


def hold_account(session: Session, hold_public_id: str, merchant_id: int) -> int:
    """The account of the merchant's own hold, whatever its status. Another merchant's hold is
    not found (SPEC 3.2)."""
    account_id = session.execute(
        select(holds.c.account_id).where(
            holds.c.public_id == hold_public_id, holds.c.merchant_id == merchant_id
        )
    ).scalar_one_or_none()
    if account_id is None:
        raise NotFound("no such hold")
    return account_id


def _locked_hold(
    session: Session, hold_public_id: str, merchant_id: int, now: datetime
) -> tuple[Any, MemberAccount]:
    """The merchant's own active hold and its member's account, locked. Another merchant's hold
    is not found (SPEC 3.2)."""
    account_id = hold_account(session, hold_public_id, merchant_id)
    member = lock_member_accounts(session, [account_id])[account_id]
    hold = session.execute(select(holds).where(holds.c.public_id == hold_public_id)).one()
    if hold.status != "active":
        raise HoldNotActive(f"the hold is already {hold.status}", status_now=hold.status)
    if hold.expires_at <= now:
        raise HoldNotActive("the hold has expired", status_now="expired")
    return hold, member


def capture_hold(
    session: Session,
    *,
    hold_id: str,
    merchant_id: int,
    actor: Actor,
    now: datetime,
    points: int | None = None,
    reason: str = "hold capture",
) -> dict[str, Any]:
    """Spend all of a hold's points, or fewer; the rest is released."""
    hold, member = _locked_hold(session, hold_id, merchant_id, now)
    points = hold.points if points is None else check_points(points)
    if points > hold.points:
        raise InvalidRequest(f"the hold reserves {hold.points} points; cannot capture {points}")
    held_elsewhere = held_points(session, member.id, now, excluding=hold.id)
    _, public_id = _spend(
        session,
        member,
        merchant_id=merchant_id,
        points=points,
        held_elsewhere=held_elsewhere,
        actor=actor,
        now=now,
        reason=reason,
        external_id=None,
        hold_id=hold.id,
    )
    session.execute(
        update(holds)
        .where(holds.c.id == hold.id)
        .values(status="captured", captured_points=points, closed_at=now)
    )
    transaction = {"id": public_id, "type": "redeem", "points": points, "hold": hold_id}
    outbox.record(
        session,
        [
            outbox.event_row(
                "hold.captured",
                {"transaction": transaction},
                now,
                merchant_id=merchant_id,
                member_id=member.member_id,
            )
        ],
    )
    return {"transaction": transaction, "member": _member_view(member, held_elsewhere)}


def void_hold(session: Session, *, hold_id: str, merchant_id: int, now: datetime) -> dict[str, Any]:
    """Release a hold without spending."""
    hold, member = _locked_hold(session, hold_id, merchant_id, now)
    session.execute(
        update(holds).where(holds.c.id == hold.id).values(status="voided", closed_at=now)
    )
    outbox.record(
        session,
        [
            outbox.event_row(
                "hold.voided",
                {"hold": {"id": hold_id, "points": hold.points}},
                now,
                merchant_id=merchant_id,
                member_id=member.member_id,
            )
        ],
    )
    held = held_points(session, member.id, now)
    return {
        "hold": {"id": hold_id, "points": hold.points, "status": "voided"},
        "member": _member_view(member, held),
    }


def merchant_transaction(session: Session, public_id: str, merchant_id: int, type: str) -> Any:
    """The merchant's own purchase (`earn`) or redemption (`redeem`). Another merchant's is not
    found, like one that does not exist (SPEC 3.2)."""
    row = session.execute(
        select(transactions).where(
            transactions.c.public_id == public_id,
            transactions.c.merchant_id == merchant_id,
            transactions.c.type == type,
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no such {'purchase' if type == 'earn' else 'redemption'}")
    return row


def _paid_points(
    session: Session, own_lots: Sequence[Any], clawed: dict[str, int], paid_before: int
) -> int:
    """Of the merchant-funded points a refund claws back, those the issuer had already paid for
    (SPEC 2, `on_redemption` clawback credits): points of the purchase's own lot that had left it
    by redemption (net of reversals) or by repaying a debt, less those earlier refunds counted.
    Points still in the lot, or gone by expiry or an earlier clawback, were never paid for."""
    lot = next((lot for lot in own_lots if lot.source == "merchant"), None)
    if lot is None or not clawed.get("merchant"):
        return 0
    uncovered = max(clawed["merchant"] - lot.remaining, 0)
    if not uncovered:
        return 0
    signed = case(
        (consumptions.c.kind == "restore", -consumptions.c.points), else_=consumptions.c.points
    )
    spent = session.execute(
        select(func.coalesce(func.sum(signed), 0)).where(
            consumptions.c.lot_id == lot.id,
            consumptions.c.kind.in_(("redeem", "restore", "repay")),
        )
    ).scalar_one()
    return max(min(uncovered, int(spent) - paid_before), 0)


def refund(
    session: Session,
    *,
    purchase_id: str,
    merchant_id: int,
    amount_minor: int,
    actor: Actor,
    now: datetime,
    external_id: str | None = None,
    reason: str = "refund",
    locked: MemberAccount | None = None,
) -> dict[str, Any]:
    """Claw back a refunded purchase's points (SPEC 2, Refunds): merchant-funded and tier points
    in proportion, floor(points x refunded / amount) less what earlier refunds clawed; welcome
    points only when the purchase is refunded in full. Each funder's points come from its own
    lot of the purchase first, then the purchase's other lots, then the member's other lots
    soonest-expiring first; what is missing becomes debt (decision 5).

    `locked`: the purchase's member's account, when the caller already holds its lock (it
    looked for an earlier refund under the same external id first)."""
    check_amount(amount_minor, "amount", 1)
    purchase = merchant_transaction(session, purchase_id, merchant_id, "earn")
    if locked is not None and locked.id != purchase.member_account_id:
        raise ValueError("the locked account is not the purchase's member's")
    member = (
        locked
        or lock_member_accounts(session, [purchase.member_account_id])[purchase.member_account_id]
    )

    earlier = session.execute(
        select(
            transactions.c.amount_minor, transactions.c.breakdown, transactions.c.paid_points
        ).where(transactions.c.original_id == purchase.id, transactions.c.type == "refund")
    ).all()
    refunded_before = sum(r.amount_minor for r in earlier)
    if refunded_before + amount_minor > purchase.amount_minor:
        left = purchase.amount_minor - refunded_before
        raise RefundExceedsPurchase(
            f"only {left} minor units of this purchase are left to refund", refundable=left
        )
    refunded = refunded_before + amount_minor
    clawed_before: dict[str, int] = defaultdict(int)
    for row in earlier:
        for source, points in (row.breakdown or {}).items():
            clawed_before[source] += points

    own_lots = session.execute(
        select(lots.c.id, lots.c.source, lots.c.points, lots.c.remaining, lots.c.issuer_account_id)
        .join(transfers, transfers.c.id == lots.c.transfer_id)
        .where(transfers.c.transaction_id == purchase.id)
        .order_by(lots.c.id)
    ).all()
    clawed: dict[str, int] = {}
    issuer_of: dict[str, int] = {}
    for lot in own_lots:
        if lot.source == "welcome":
            target = lot.points if refunded == purchase.amount_minor else 0
        else:
            target = lot.points * refunded // purchase.amount_minor
        clawed[lot.source] = target - clawed_before[lot.source]
        issuer_of[lot.source] = lot.issuer_account_id
    total = sum(clawed.values())
    paid = _paid_points(session, own_lots, clawed, sum(r.paid_points or 0 for r in earlier))

    transaction_id, public_id = _new_transaction(
        session,
        type="refund",
        member=member,
        merchant_id=merchant_id,
        points=total,
        actor=actor,
        reason=reason,
        now=now,
        amount_minor=amount_minor,
        currency=purchase.currency,
        original_id=purchase.id,
        external_id=external_id,
        breakdown=clawed,
        paid_points=paid,
    )
    # One clawback transfer per funder, each crediting back the account that issued the points.
    portions = [(s, clawed[s]) for s in LOT_SOURCES if clawed.get(s, 0) > 0]
    transfer_ids = insert_returning_ids(
        session,
        transfers,
        [
            transfer_row(transaction_id, "clawback", member.id, issuer_of[s], p, now)
            for s, p in portions
        ],
    )
    if total:
        # Every open lot of the purchase (they come first), then enough of the member's others
        # to cover `total`; each funder's portion comes from its own lot before any other.
        candidates = lotplan.open_lots(
            session,
            member.id,
            total + sum(lot.remaining for lot in own_lots),
            first=[lot.id for lot in own_lots],
        )
        lot_of = {lot.source: lot.id for lot in own_lots}
        pieces = lotplan.plan_by_funder(candidates, [(lot_of[s], p) for s, p in portions])
        lotplan.record(
            session,
            [
                lotplan.Consumed(member.id, tid, take, "clawback", issuer_of[source])
                for (source, _), tid, piece in zip(portions, transfer_ids, pieces, strict=True)
                for take in piece
            ],
            now,
        )
        shortfall = sum(t.points for piece in pieces for t in piece if t.lot_id is None)
        member.balance -= total
        member.debt += shortfall
        store_balances(session, [member])

    transaction = {
        "id": public_id,
        "type": "refund",
        "purchase": purchase_id,
        "amount_minor": amount_minor,
        "points_clawed_back": total,
        "breakdown": clawed,
    }
    outbox.record(
        session,
        [
            outbox.event_row(
                "purchase.refunded",
                {"transaction": transaction},
                now,
                merchant_id=merchant_id,
                member_id=member.member_id,
            )
        ],
    )
    return {
        "transaction": transaction,
        "member": _member_view(member, held_points(session, member.id, now)),
    }


def reverse_redemption(
    session: Session,
    *,
    redemption_id: str,
    merchant_id: int,
    actor: Actor,
    now: datetime,
    reason: str = "redemption reversed",
) -> dict[str, Any]:
    """Undo a redemption: its points go back to the lots they came from (SPEC 3.3). A
    redemption is reversed at most once; the database refuses a second reversal too."""
    original = merchant_transaction(session, redemption_id, merchant_id, "redeem")
    member = lock_member_accounts(session, [original.member_account_id])[original.member_account_id]
    already = session.execute(
        select(transactions.c.public_id).where(
            transactions.c.original_id == original.id, transactions.c.type == "reversal"
        )
    ).scalar_one_or_none()
    if already is not None:
        raise AlreadyReversed(
            f"this redemption was already reversed by {already}", reversal=already
        )

    spent = session.execute(
        select(
            consumptions.c.id,
            consumptions.c.lot_id,
            consumptions.c.issuer_account_id,
            consumptions.c.points,
            consumptions.c.redeemer_account_id,
        )
        .join(transfers, transfers.c.id == consumptions.c.transfer_id)
        .where(transfers.c.transaction_id == original.id, consumptions.c.kind == "redeem")
        .order_by(consumptions.c.id)
    ).all()
    redeemer = merchant_account_id(session, merchant_id)
    transaction_id, public_id = _new_transaction(
        session,
        type="reversal",
        member=member,
        merchant_id=merchant_id,
        points=original.points,
        actor=actor,
        reason=reason,
        now=now,
        original_id=original.id,
    )
    [transfer_id] = insert_returning_ids(
        session,
        transfers,
        [transfer_row(transaction_id, "reverse", redeemer, member.id, original.points, now)],
    )
    lotplan.record(
        session,
        [
            lotplan.Consumed(
                member.id,
                transfer_id,
                lotplan.Take(c.lot_id, c.issuer_account_id, c.points),
                "restore",
                c.redeemer_account_id,
                restores_id=c.id,
            )
            for c in spent
        ],
        now,
    )
    member.balance += original.points
    restored_lots = {c.lot_id: transfer_id for c in spent}
    repaid = _repay_debt(session, member, operator_account_id(session), restored_lots, now)
    store_balances(session, [member])

    transaction = {
        "id": public_id,
        "type": "reversal",
        "redemption": redemption_id,
        "points": original.points,
        "debt_repaid": repaid,
    }
    outbox.record(
        session,
        [
            outbox.event_row(
                "redemption.reversed",
                {"transaction": transaction},
                now,
                merchant_id=merchant_id,
                member_id=member.member_id,
            )
        ],
    )
    return {
        "transaction": transaction,
        "member": _member_view(member, held_points(session, member.id, now)),
    }


def expire_due_lots(
    session: Session, *, cutoff: datetime, now: datetime, actor: Actor, limit: int = 1000
) -> int:
    """Expire the open lots of up to `limit` members whose lots expire at or before `cutoff`:
    their points go to the operator (breakage). Returns how many members were touched; call
    again, in a new transaction, until it returns 0."""
    account_ids = (
        session.execute(
            select(lots.c.account_id)
            .where(lots.c.remaining > 0, lots.c.expires_at <= cutoff)
            .group_by(lots.c.account_id)
            .order_by(lots.c.account_id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    if not account_ids:
        return 0
    members = lock_member_accounts(session, account_ids)
    # Re-read under the locks: a redemption may have spent some of these lots meanwhile.
    due = session.execute(
        select(lots.c.id, lots.c.account_id, lots.c.issuer_account_id, lots.c.remaining)
        .where(
            lots.c.account_id.in_(account_ids), lots.c.remaining > 0, lots.c.expires_at <= cutoff
        )
        .order_by(lots.c.account_id, lots.c.expires_at, lots.c.id)
    ).all()
    by_account: dict[int, list[Any]] = defaultdict(list)
    for lot in due:
        by_account[lot.account_id].append(lot)
    if not by_account:
        return 0
    operator = operator_account_id(session)
    expiring = [members[a] for a in sorted(by_account)]
    totals = [sum(lot.remaining for lot in by_account[m.id]) for m in expiring]
    public_ids = [new_id("txn") for _ in expiring]
    transaction_ids = insert_returning_ids(
        session,
        transactions,
        [
            {
                "public_id": pid,
                "type": "expiry",
                "member_account_id": m.id,
                "merchant_id": None,
                "points": total,
                "actor_type": actor.type,
                "actor_id": actor.id,
                "reason": "points expired",
                "created_at": now,
            }
            for m, total, pid in zip(expiring, totals, public_ids, strict=True)
        ],
    )
    transfer_ids = insert_returning_ids(
        session,
        transfers,
        [
            transfer_row(tid, "expire", m.id, operator, total, now)
            for m, total, tid in zip(expiring, totals, transaction_ids, strict=True)
        ],
    )
    events, consumed = [], []
    for member, total, transfer_id, public_id in zip(
        expiring, totals, transfer_ids, public_ids, strict=True
    ):
        consumed += [
            lotplan.Consumed(
                member.id,
                transfer_id,
                lotplan.Take(lot.id, lot.issuer_account_id, lot.remaining),
                "expire",
                operator,
            )
            for lot in by_account[member.id]
        ]
        member.balance -= total
        events.append(
            outbox.event_row(
                "points.expired",
                {"transaction": {"id": public_id, "type": "expiry", "points": total}},
                now,
                member_id=member.member_id,
            )
        )
    lotplan.record(session, consumed, now)
    store_balances(session, expiring)
    outbox.record(session, events)
    return len(expiring)


def notify_expiring(
    session: Session, *, horizon: datetime, now: datetime, limit: int = 1000
) -> int:
    """SPEC 2: members hear of points expiring by `horizon` (30 days ahead), once per lot.
    Returns how many members were notified; call again until it returns 0."""
    account_ids = (
        session.execute(
            select(lots.c.account_id)
            .where(
                lots.c.remaining > 0,
                lots.c.expires_at <= horizon,
                lots.c.expiring_notice_at.is_(None),
            )
            .group_by(lots.c.account_id)
            .order_by(lots.c.account_id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    if not account_ids:
        return 0
    members = lock_member_accounts(session, account_ids)
    due = session.execute(
        select(lots.c.id, lots.c.account_id, lots.c.remaining, lots.c.expires_at)
        .where(
            lots.c.account_id.in_(account_ids),
            lots.c.remaining > 0,
            lots.c.expires_at <= horizon,
            lots.c.expiring_notice_at.is_(None),
        )
        .order_by(lots.c.account_id, lots.c.expires_at, lots.c.id)
    ).all()
    by_account: dict[int, list[Any]] = defaultdict(list)
    for lot in due:
        by_account[lot.account_id].append(lot)
    session.execute(
        update(lots).where(lots.c.id.in_([lot.id for lot in due])).values(expiring_notice_at=now)
    )
    outbox.record(
        session,
        [
            outbox.event_row(
                "points.expiring",
                {
                    "expiring": [
                        {"points": lot.remaining, "expires_at": lot.expires_at.isoformat()}
                        for lot in member_lots
                    ]
                },
                now,
                member_id=members[account_id].member_id,
            )
            for account_id, member_lots in sorted(by_account.items())
        ],
    )
    return len(by_account)
