"""Expiry (SPEC 2): lots that reach their expiry date give their remaining points to the
operator (breakage), and members hear 30 days ahead of points about to expire. Both work on a
bounded number of members per call, one transaction each (`coalition.tasks.expire_points`)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from coalition import outbox
from coalition.database import table
from coalition.ids import new_id
from coalition.ledger import lots as lotplan
from coalition.ledger.accounts import (
    MemberAccount,
    operator_account_id,
    store_balances,
)
from coalition.ledger.models import Account, Lot, Transaction, Transfer
from coalition.ledger.reads import members
from coalition.ledger.rows import Actor, insert_returning_ids, transfer_row

# SPEC 2: members get a `points.expiring` notice this long before a lot expires.
NOTICE_AHEAD = timedelta(days=30)

transactions = table(Transaction)
transfers = table(Transfer)
lots = table(Lot)
accounts = table(Account)


def expire_due_lots(
    session: Session, *, cutoff: datetime, now: datetime, actor: Actor, limit: int = 1000
) -> int:
    """Expire the open lots of up to `limit` members whose lots expire at or before `cutoff`:
    their points go to the operator (breakage). Returns how many members were touched; call
    again, in a new transaction, until it returns 0."""
    # A lot still pending waits for its confirmation (the nightly job confirms first).
    members, by_account = lotplan.due_lots_by_member(
        session, [lots.c.remaining > 0, lots.c.expires_at <= cutoff, lotplan.spendable()], limit
    )
    if not by_account:
        return 0
    return len(_expire(session, members, by_account, now=now, actor=actor, reason="points expired"))


def write_off(
    session: Session, *, account_id: int, now: datetime, actor: Actor, reason: str
) -> int:
    """Every open lot of one member account goes to the operator (breakage) at once, as expiry
    does, in one `expiry` transaction saying `reason`: a member who erases itself leaves no
    points behind (decisions: privacy). Locks the account. Returns the points written off."""
    members, by_account = lotplan.due_lots_by_member(
        session, [lots.c.remaining > 0, lots.c.account_id == account_id], 1
    )
    if not by_account:
        return 0
    return sum(_expire(session, members, by_account, now=now, actor=actor, reason=reason))


def _expire(
    session: Session,
    members: dict[int, MemberAccount],
    by_account: dict[int, list[Any]],
    *,
    now: datetime,
    actor: Actor,
    reason: str,
) -> list[int]:
    """The expiry of `by_account`'s lots (read under their members' locks): one `expiry`
    transaction per member, its transfer to the operator, the lots consumed, the balances
    stored, and a `points.expired` event per member and issuer, as `points.expiring` (decision
    207): the issuing merchant hears of its own lots only, never of the member's points from
    another shop nor of its expiry transaction (the member's, coalition-wide). Returns the points
    expired, per member."""
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
                "reason": reason,
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
    consumed = []
    for member, total, transfer_id in zip(expiring, totals, transfer_ids, strict=True):
        # Only a write-off (an erasure) reaches a lot still pending: its points were never
        # issued, so they are cancelled, as a refund inside the window would (no money moves).
        pending = [lot for lot in by_account[member.id] if _still_pending(lot)]
        consumed += [
            lotplan.Consumed(
                member.id,
                transfer_id,
                lotplan.Take(lot.id, lot.issuer_account_id, lot.remaining),
                "cancel" if _still_pending(lot) else "expire",
                operator,
            )
            for lot in by_account[member.id]
        ]
        member.balance -= total
        member.pending -= sum(lot.remaining for lot in pending)
    lotplan.record(session, consumed, now)
    store_balances(session, expiring)
    outbox.record(
        session, _per_issuer(session, "points.expired", members, by_account, "expired", now)
    )
    return totals


def notify_expiring(
    session: Session, *, horizon: datetime, now: datetime, limit: int = 1000
) -> int:
    """SPEC 2: members hear of points expiring by `horizon` (30 days ahead), once per lot: each
    lot told of is marked (`expiring_notice_at`) in the same transaction as its event, so it is
    in no later notice, and a lot spent meanwhile is in none. One event per member and issuer
    (decision 207): the issuing merchant's `points.expiring` names it, the operator-funded lots'
    (welcome, tier) name no merchant. Returns how many members were told; call again, in a new
    transaction, until it returns 0."""
    members, by_account = lotplan.due_lots_by_member(
        session,
        [lots.c.remaining > 0, lots.c.expires_at <= horizon, lots.c.expiring_notice_at.is_(None)],
        limit,
    )
    if not by_account:
        return 0
    session.execute(
        update(lots)
        .where(
            lots.c.id.in_([lot.id for member_lots in by_account.values() for lot in member_lots])
        )
        .values(expiring_notice_at=now)
    )
    events = _per_issuer(session, "points.expiring", members, by_account, "expiring", now)
    outbox.record(session, events)
    return len(by_account)


def _per_issuer(
    session: Session,
    type: str,
    members: dict[int, MemberAccount],
    by_account: dict[int, list[Any]],
    listed: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """One event per member and issuer of `by_account`'s lots: the issuing merchant's names it,
    the operator-funded lots' (welcome, tier) name no merchant. `data`: the member by public id,
    the points, the earliest expiry and each lot's points and expiry under `listed`."""
    issuers = _merchants_of(
        session,
        {lot.issuer_account_id for member_lots in by_account.values() for lot in member_lots},
    )
    public_ids = _member_public_ids(session, [members[a].member_id for a in by_account])
    events = []
    for account_id, member_lots in sorted(by_account.items()):
        member = members[account_id]
        by_issuer: dict[int | None, list[Any]] = defaultdict(list)
        for lot in member_lots:
            by_issuer[issuers.get(lot.issuer_account_id)].append(lot)
        for merchant_id, issued in sorted(by_issuer.items(), key=lambda pair: pair[0] or 0):
            issued.sort(key=lambda lot: (lot.expires_at, lot.id))
            events.append(
                outbox.event_row(
                    type,
                    {
                        "member": {"id": public_ids[member.member_id]},
                        "points": sum(lot.remaining for lot in issued),
                        "expires_at": issued[0].expires_at.isoformat(),
                        listed: [
                            {"points": lot.remaining, "expires_at": lot.expires_at.isoformat()}
                            for lot in issued
                        ],
                    },
                    now,
                    merchant_id=merchant_id,
                    member_id=member.member_id,
                )
            )
    return events


def _merchants_of(session: Session, account_ids: set[int]) -> dict[int, int]:
    """The merchant of each of these accounts that is a merchant's (the operator's is not)."""
    rows = session.execute(
        select(accounts.c.id, accounts.c.merchant_id).where(
            accounts.c.id.in_(sorted(account_ids)), accounts.c.merchant_id.is_not(None)
        )
    ).all()
    return {row.id: row.merchant_id for row in rows}


def _member_public_ids(session: Session, member_ids: list[int]) -> dict[int, str]:
    rows = session.execute(
        select(members.c.id, members.c.public_id).where(members.c.id.in_(sorted(member_ids)))
    ).all()
    return {row.id: row.public_id for row in rows}


def _still_pending(lot: Any) -> bool:
    return lot.pending_until is not None and lot.confirmed_at is None
