"""Many awards in one go (SPEC 3.3, the purchase batch): the same ledger entries as
`operations.award` called once per award in order, written set-based: the members' accounts
locked once in ascending id order, then one INSERT each for transactions, transfers, lots and
outbox events, and one UPDATE for the balances, whatever the number of awards.

A member in debt is the exception: its awards go through `operations.award` one by one, which
repays the debt from the new lots (rare, and it keeps one implementation of the repayment)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from coalition import outbox
from coalition.errors import InvalidRequest, NotFound
from coalition.ids import new_id
from coalition.ledger import operations
from coalition.ledger.accounts import (
    MemberAccount,
    lock_member_accounts,
    merchant_account_id,
    operator_account_id,
    store_balances,
)
from coalition.ledger.models import LOT_SOURCES
from coalition.ledger.rows import check_amount, check_points, insert_returning_ids, transfer_row

# TIGER_STYLE: a bound on every list. The purchase batch allows 1,000 lines.
MAX_AWARDS = 10_000


@dataclass(frozen=True)
class Award:
    """One award of a batch: what `operations.award` takes, the member by its account id."""

    account_id: int
    parts: Mapping[str, int]
    expires_at: datetime
    amount_minor: int
    currency: str
    external_id: str | None = None
    breakdown: Mapping[str, int] | None = None
    occurred_at: datetime | None = None


def award_one(
    session: Session,
    award: Award,
    *,
    member: MemberAccount,
    merchant_id: int,
    actor: operations.Actor,
    now: datetime,
    welcome_bonus: int,
    reason: str = "purchase",
) -> dict[str, Any]:
    """One award through the single-award path, for a member already locked."""
    return operations.award(
        session,
        member_id=member.member_id,
        merchant_id=merchant_id,
        parts=dict(award.parts),
        expires_at=award.expires_at,
        amount_minor=award.amount_minor,
        currency=award.currency,
        actor=actor,
        now=now,
        external_id=award.external_id,
        breakdown=dict(award.breakdown) if award.breakdown is not None else None,
        occurred_at=award.occurred_at,
        reason=reason,
        welcome_bonus=welcome_bonus,
        locked=member,
    )


def _check(award: Award, now: datetime) -> None:
    """The checks `operations.award` makes, for every award before anything is written."""
    unknown = set(award.parts) - set(LOT_SOURCES)
    if unknown:
        raise InvalidRequest(f"unknown award parts: {', '.join(sorted(unknown))}")
    for source, points in award.parts.items():
        check_points(points, f"{source} points", allow_zero=True)
    check_amount(award.amount_minor, "amount", 0)
    if award.expires_at <= now:
        raise InvalidRequest("points must expire after they are awarded")


def award_many(
    session: Session,
    *,
    merchant_id: int,
    awards: Sequence[Award],
    actor: operations.Actor,
    now: datetime,
    reason: str = "purchase",
    welcome_bonus: int = 0,
    locked: Mapping[int, MemberAccount] | None = None,
) -> list[dict[str, Any]]:
    """Award each of `awards` at `merchant_id`, in order, as `operations.award` would one by one
    (welcome bonus on a member's first purchase anywhere, decided under the lock; a member in
    debt repays it first). Returns, per award, what `award` returns: the transaction and the
    member's balance and debt right after that award.

    `locked`: the members' accounts by account id, when the caller already holds their locks
    (taken in ascending id order); otherwise they are locked here."""
    if len(awards) > MAX_AWARDS:
        raise InvalidRequest(f"at most {MAX_AWARDS} awards at once")
    check_points(welcome_bonus, "welcome bonus", allow_zero=True)
    for award in awards:
        _check(award, now)
    if not awards:
        return []
    wanted = {a.account_id for a in awards}
    members = dict(locked) if locked is not None else lock_member_accounts(session, wanted)
    missing = wanted - set(members)
    if missing:
        raise NotFound("no such member")

    results: list[dict[str, Any] | None] = [None] * len(awards)
    # SPEC 2: new points of a member in debt repay it first; `award` knows how.
    in_debt = [i for i, a in enumerate(awards) if members[a.account_id].debt > 0]
    plain = [i for i, a in enumerate(awards) if members[a.account_id].debt == 0]

    operator = operator_account_id(session)
    issuer_of = {"merchant": merchant_account_id(session, merchant_id)}
    rows, funded_of, snapshots = [], [], []
    for i in plain:
        award = awards[i]
        member = members[award.account_id]
        parts = dict(award.parts)
        breakdown = dict(award.breakdown) if award.breakdown is not None else None
        if welcome_bonus and not member.welcomed:
            parts["welcome"] = parts.get("welcome", 0) + welcome_bonus
            if breakdown is not None:
                breakdown["welcome"] = breakdown.get("welcome", 0) + welcome_bonus
        # SPEC 2: as in `award`, the first purchase uses up the welcome whatever the bonus was.
        member.welcomed = True
        total = sum(parts.values())
        member.balance += total
        public_id = new_id("txn")
        rows.append(
            {
                "public_id": public_id,
                "type": "earn",
                "member_account_id": member.id,
                "merchant_id": merchant_id,
                "points": total,
                "actor_type": actor.type,
                "actor_id": actor.id,
                "reason": reason,
                "created_at": now,
                "amount_minor": award.amount_minor,
                "currency": award.currency,
                "external_id": award.external_id,
                "breakdown": breakdown or dict(parts),
                "occurred_at": award.occurred_at,
            }
        )
        # SPEC 2: within one award the merchant-funded lot is created before operator-funded ones.
        funded_of.append([(s, parts[s]) for s in LOT_SOURCES if parts.get(s, 0) > 0])
        transaction = {
            "id": public_id,
            "type": "earn",
            "points": total,
            "breakdown": breakdown or dict(parts),
            "debt_repaid": 0,
        }
        snapshots.append((i, member, transaction))
        results[i] = {
            "transaction": transaction,
            "member": {"balance": member.balance, "debt": member.debt},
        }

    transaction_ids = insert_returning_ids(session, operations.transactions, rows)
    transfer_rows, lot_rows = [], []
    for (_, member, _), transaction_id, funded, award_index in zip(
        snapshots, transaction_ids, funded_of, plain, strict=True
    ):
        for source, points in funded:
            issuer = issuer_of.get(source, operator)
            transfer_rows.append(
                transfer_row(transaction_id, "award", issuer, member.id, points, now)
            )
            lot_rows.append(
                {
                    "account_id": member.id,
                    "issuer_account_id": issuer,
                    "source": source,
                    "points": points,
                    "remaining": points,
                    "expires_at": awards[award_index].expires_at,
                    "created_at": now,
                }
            )
    transfer_ids = insert_returning_ids(session, operations.transfers, transfer_rows)
    for lot, transfer_id in zip(lot_rows, transfer_ids, strict=True):
        lot["transfer_id"] = transfer_id
    insert_returning_ids(session, operations.lots, lot_rows)
    store_balances(
        session,
        [members[account_id] for account_id in sorted({awards[i].account_id for i in plain})],
    )
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
            for _, member, transaction in snapshots
        ],
    )

    for i in in_debt:
        award = awards[i]
        member = members[award.account_id]
        results[i] = award_one(
            session,
            award,
            member=member,
            merchant_id=merchant_id,
            actor=actor,
            now=now,
            reason=reason,
            welcome_bonus=welcome_bonus,
        )
    done = [r for r in results if r is not None]
    if len(done) != len(awards):
        raise AssertionError("an award of the batch was left without a result")
    return done
