"""Awards (SPEC 2): points for purchases, the one way points are issued. `award_many` writes one
award or a thousand the same way, set-based: the members' accounts locked once in ascending id
order, then one INSERT each for transactions, transfers, lots and outbox events, one for the
consumptions that repay members' debts, and one UPDATE for the balances, whatever the number of
awards. The ledger it leaves is the one the same awards made one by one, in order, would leave;
`award` is the single purchase's way in.

Each non-zero part of an award (`merchant`: base, campaign and stamp points, funded by the
merchant; the operator-funded `tier` (the tier's and a premium membership's extra points) and
`welcome`) becomes its own transfer and lot, the
merchant's first. A member's first purchase anywhere adds the welcome bonus, decided under the
lock, so only once. New points of a member in debt repay it first.

An award with `pending_until` (its merchant's pending window, SPEC 2) makes all its lots
pending, the operator-funded ones too: the whole purchase waits for its return period. Its
points count in the balance and in `pending`, are not spendable and repay no debt until the
nightly job confirms them (`coalition.ledger.pending`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from coalition import outbox
from coalition.database import table
from coalition.errors import InvalidRequest, NotFound
from coalition.ids import new_id
from coalition.ledger import lots as lotplan
from coalition.ledger import shapes
from coalition.ledger.accounts import (
    Issuers,
    MemberAccount,
    issuers,
    lock_member_accounts,
    lock_or_reuse,
    store_balances,
)
from coalition.ledger.models import LOT_SOURCES, Lot, Transaction, Transfer
from coalition.ledger.rows import (
    Actor,
    check_amount,
    check_points,
    insert_returning_ids,
    transfer_row,
)

transactions = table(Transaction)
transfers = table(Transfer)
lots = table(Lot)

# TIGER_STYLE: a bound on every list. The purchase batch allows 1,000 lines.
MAX_AWARDS = 10_000


@dataclass(frozen=True)
class Award:
    """One award: the member by its account id, each funder's part in points, when its lots
    expire, and the purchase it is for."""

    account_id: int
    parts: Mapping[str, int]
    expires_at: datetime
    amount_minor: int
    currency: str
    external_id: str | None = None
    breakdown: Mapping[str, int] | None = None
    occurred_at: datetime | None = None
    # The purchase as the till described it, and the version of the earn rules it earned under.
    rules_version: int | None = None
    store: str | None = None
    items: Sequence[Mapping[str, Any]] | None = None
    # The end of the merchant's pending window; None: the points are spendable at once.
    pending_until: datetime | None = None
    # The member's public id, for the event (read when not given).
    member_public_id: str | None = None


@dataclass
class _Entry:
    """An award being written: its member, its transaction and the lots it funds."""

    award: Award
    member: MemberAccount
    public_id: str
    funded: list[tuple[str, int]]
    repaid: int
    result: dict[str, Any]
    transaction_id: int = 0


def _check(award: Award, now: datetime) -> None:
    """Refuse an award before anything of its batch is written."""
    unknown = set(award.parts) - set(LOT_SOURCES)
    if unknown:
        raise InvalidRequest(f"unknown award parts: {', '.join(sorted(unknown))}")
    for source, points in award.parts.items():
        check_points(points, f"{source} points", allow_zero=True)
    check_amount(award.amount_minor, "amount", 0)
    if award.expires_at <= now:
        raise InvalidRequest("points must expire after they are awarded")
    if award.pending_until is not None and award.pending_until <= now:
        raise InvalidRequest("a pending window ends after the points are awarded")


def award(
    session: Session,
    *,
    member_id: int,
    merchant_id: int,
    parts: Mapping[str, int],
    expires_at: datetime,
    amount_minor: int,
    currency: str,
    actor: Actor,
    now: datetime,
    external_id: str | None = None,
    breakdown: Mapping[str, int] | None = None,
    occurred_at: datetime | None = None,
    reason: str = "purchase",
    welcome_bonus: int = 0,
    locked: MemberAccount | None = None,
    pending_until: datetime | None = None,
) -> dict[str, Any]:
    """One award to the member `member_id`, through `award_many`. `locked`: the member's
    account, when the caller already holds its lock (it checked something under it first, such
    as an external id)."""
    member = lock_or_reuse(session, member_id, locked)
    [result] = award_many(
        session,
        merchant_id=merchant_id,
        awards=[
            Award(
                account_id=member.id,
                parts=parts,
                expires_at=expires_at,
                amount_minor=amount_minor,
                currency=currency,
                external_id=external_id,
                breakdown=breakdown,
                occurred_at=occurred_at,
                pending_until=pending_until,
            )
        ],
        actor=actor,
        now=now,
        reason=reason,
        welcome_bonus=welcome_bonus,
        locked={member.id: member},
    )
    return result


def award_many(
    session: Session,
    *,
    merchant_id: int,
    awards: Sequence[Award],
    actor: Actor,
    now: datetime,
    reason: str = "purchase",
    welcome_bonus: int = 0,
    locked: Mapping[int, MemberAccount] | None = None,
    issued_from: Issuers | None = None,
) -> list[dict[str, Any]]:
    """Award each of `awards` at `merchant_id`, in order. Returns, per award, its transaction
    (with the points and the debt it repaid) and the member's balance and debt right after it.
    An award changes no hold, so the answer spares the hot path that query.

    `locked`: the members' accounts by account id, when the caller already holds their locks
    (taken in ascending id order); otherwise they are locked here. `issued_from`: the
    merchant's and operator's accounts, when the caller read them already."""
    if len(awards) > MAX_AWARDS:
        raise InvalidRequest(f"at most {MAX_AWARDS} awards at once")
    check_points(welcome_bonus, "welcome bonus", allow_zero=True)
    for one in awards:
        _check(one, now)
    if not awards:
        return []
    wanted = {a.account_id for a in awards}
    members = dict(locked) if locked is not None else lock_member_accounts(session, wanted)
    if wanted - set(members):
        raise NotFound("no such member")

    entries = [_entry(one, members[one.account_id], welcome_bonus) for one in awards]
    issued_from = issued_from or issuers(session, merchant_id)
    operator = issued_from.operator
    issuer_of = {"merchant": issued_from.merchant}
    transaction_ids = insert_returning_ids(
        session,
        transactions,
        [
            {
                "public_id": entry.public_id,
                "type": "earn",
                "member_account_id": entry.member.id,
                "merchant_id": merchant_id,
                "points": entry.result["transaction"]["points"],
                "actor_type": actor.type,
                "actor_id": actor.id,
                "reason": reason,
                "created_at": now,
                "amount_minor": entry.award.amount_minor,
                "currency": entry.award.currency,
                "external_id": entry.award.external_id,
                "breakdown": entry.result["transaction"]["breakdown"],
                "occurred_at": entry.award.occurred_at,
                "rules_version": entry.award.rules_version,
                "store": entry.award.store,
                "items": list(entry.award.items) if entry.award.items is not None else None,
            }
            for entry in entries
        ],
    )
    funded = [
        (entry, source, points, issuer_of.get(source, operator))
        for entry in entries
        for source, points in entry.funded
    ]
    for entry, transaction_id in zip(entries, transaction_ids, strict=True):
        entry.transaction_id = transaction_id
    transfer_ids = insert_returning_ids(
        session,
        transfers,
        [
            transfer_row(entry.transaction_id, "award", issuer, entry.member.id, points, now)
            for entry, _, points, issuer in funded
        ],
    )
    lot_ids = insert_returning_ids(
        session,
        lots,
        [
            {
                "account_id": entry.member.id,
                "issuer_account_id": issuer,
                "transfer_id": transfer_id,
                "source": source,
                "points": points,
                "remaining": points,
                "expires_at": entry.award.expires_at,
                "pending_until": entry.award.pending_until,
                "created_at": now,
            }
            for (entry, source, points, issuer), transfer_id in zip(
                funded, transfer_ids, strict=True
            )
        ],
    )
    lotplan.record(session, _repayments(funded, transfer_ids, lot_ids, operator), now)
    store_balances(session, [members[account_id] for account_id in sorted(wanted)])
    public_ids = shapes.member_ids(
        session, [e.member.member_id for e in entries if e.award.member_public_id is None]
    )
    outbox.record(
        session,
        [
            outbox.event_row(
                "purchase.created",
                {
                    "transaction": shapes.earn(
                        entry.public_id,
                        entry.result["transaction"]["points"],
                        entry.result["transaction"]["breakdown"],
                    ),
                    "member": {
                        "id": entry.award.member_public_id or public_ids[entry.member.member_id]
                    },
                },
                now,
                merchant_id=merchant_id,
                member_id=entry.member.member_id,
            )
            for entry in entries
        ],
    )
    return [entry.result for entry in entries]


def _entry(award: Award, member: MemberAccount, welcome_bonus: int) -> _Entry:
    """The award's parts and transaction, and the member as the award leaves it (balance,
    debt, welcomed), taken in the order of the awards."""
    parts = dict(award.parts)
    breakdown = dict(award.breakdown) if award.breakdown is not None else None
    if welcome_bonus and not member.welcomed:
        parts["welcome"] = parts.get("welcome", 0) + welcome_bonus
        if breakdown is not None:
            breakdown["welcome"] = breakdown.get("welcome", 0) + welcome_bonus
    # SPEC 2: only the first purchase anywhere may carry the bonus, whatever the bonus was
    # then, so a first purchase under a bonus of 0 uses up the member's welcome too.
    member.welcomed = True
    total = sum(parts.values())
    member.balance += total
    if award.pending_until is not None:
        member.pending += total
    repaid = lotplan.debt_repaid(member)
    member.debt -= repaid
    public_id = new_id("txn")
    transaction = {
        "id": public_id,
        "type": "earn",
        "points": total,
        "breakdown": breakdown or parts,
        "debt_repaid": repaid,
    }
    if award.pending_until is not None:
        transaction["pending_until"] = award.pending_until.isoformat()
    return _Entry(
        award=award,
        member=member,
        public_id=public_id,
        # SPEC 2: within one award the merchant-funded lot is created before operator-funded ones.
        funded=[(s, parts[s]) for s in LOT_SOURCES if parts.get(s, 0) > 0],
        repaid=repaid,
        result={
            "transaction": transaction,
            "member": {"balance": member.balance, "debt": member.debt},
        },
    )


def _repayments(
    funded: Sequence[tuple[_Entry, str, int, int]],
    transfer_ids: Sequence[int],
    lot_ids: Sequence[int],
    operator: int,
) -> list[lotplan.Consumed]:
    """The consumptions that repay debts: each award that repays one does so from its own new
    lots (a member in debt has no other open lot), in the order they were made."""
    credited: dict[str, list[tuple[lotplan.OpenLot, int]]] = {}
    repaying: dict[str, _Entry] = {}
    for (entry, _, points, issuer), transfer_id, lot_id in zip(
        funded, transfer_ids, lot_ids, strict=True
    ):
        if entry.repaid:
            repaying[entry.public_id] = entry
            credited.setdefault(entry.public_id, []).append(
                (lotplan.OpenLot(lot_id, issuer, points), transfer_id)
            )
    consumed: list[lotplan.Consumed] = []
    for public_id, entry in repaying.items():
        consumed += lotplan.repayments(
            entry.member,
            [lot for lot, _ in credited[public_id]],
            {lot.id: transfer_id for lot, transfer_id in credited[public_id]},
            entry.repaid,
            operator,
        )
    return consumed
