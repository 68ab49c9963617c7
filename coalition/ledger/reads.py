"""Read-only questions about points: a member's balance and what its holds reserve, its
transactions, and a merchant's own transaction. No locks: a read sees the last committed state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, case, column, func, or_, select
from sqlalchemy import table as core_table
from sqlalchemy.orm import Session, aliased

from coalition.database import table
from coalition.errors import NotFound
from coalition.ledger.models import Account, Hold, Transaction, Transfer

accounts = table(Account)
transactions = table(Transaction)
transfers = table(Transfer)
holds = table(Hold)
# Members' public ids, named rather than imported: `coalition.members` builds on the ledger, not
# the other way round (STYLE, no circle of imports).
members = core_table("members", column("id"), column("public_id"))


def balance(session: Session, member_id: int, now: datetime) -> dict[str, int]:
    """`balance` (negative only by clawback debt), `held` by active holds, `pending` (SPEC 2:
    counted in the balance, not spendable until confirmed), and `available`: balance less
    holds and pending points, never below zero."""
    row = session.execute(
        select(accounts.c.id, accounts.c.balance, accounts.c.debt, accounts.c.pending).where(
            accounts.c.member_id == member_id
        )
    ).one_or_none()
    if row is None:
        raise NotFound("no such member")
    held = held_points(session, row.id, now)
    return {
        "balance": row.balance,
        "available": max(row.balance - row.pending - held, 0),
        "held": held,
        "pending": row.pending,
        "debt": row.debt,
    }


def balances_after(session: Session, transaction_ids: Sequence[int]) -> dict[int, int]:
    """Each transaction's member balance right after it, from the ledger. A member's
    transactions are all written under its account's lock, so their ids rise in the order they
    happened, and the balance after one is the sum of the member's transfers up to it."""
    if not transaction_ids:
        return {}
    member_account = transactions.c.member_account_id
    signed = case(
        (transfers.c.credit_account_id == member_account, transfers.c.amount),
        else_=-transfers.c.amount,
    )
    after = (
        select(func.coalesce(func.sum(signed), 0))
        .where(
            or_(
                transfers.c.credit_account_id == member_account,
                transfers.c.debit_account_id == member_account,
            ),
            transfers.c.transaction_id <= transactions.c.id,
        )
        .correlate(transactions)
        .scalar_subquery()
    )
    rows = session.execute(
        select(transactions.c.id, after.label("balance")).where(
            transactions.c.id.in_(sorted(set(transaction_ids)))
        )
    ).all()
    return {row.id: int(row.balance) for row in rows}


def merchant_transactions(
    merchant_id: int,
    *,
    member_account_id: int | None = None,
    type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select[Any]:
    """A statement for this merchant's own transactions (SPEC 3.2), each with its member's
    `mbr_` id (`member`) and the public id of the transaction it refunds or reverses
    (`original`); filtered by member account, type, and created at `since` (inclusive) to
    `until` (exclusive). Unordered: the caller pages it."""
    original = aliased(transactions)
    statement = (
        select(
            transactions.c.id,
            transactions.c.public_id,
            transactions.c.type,
            transactions.c.points,
            members.c.public_id.label("member"),
            transactions.c.amount_minor,
            transactions.c.currency,
            transactions.c.external_id,
            transactions.c.breakdown,
            original.c.public_id.label("original"),
            transactions.c.reason,
            transactions.c.occurred_at,
            transactions.c.created_at,
        )
        .select_from(
            transactions.join(accounts, accounts.c.id == transactions.c.member_account_id)
            .join(members, members.c.id == accounts.c.member_id)
            .outerjoin(original, original.c.id == transactions.c.original_id)
        )
        .where(transactions.c.merchant_id == merchant_id)
    )
    if member_account_id is not None:
        statement = statement.where(transactions.c.member_account_id == member_account_id)
    if type:
        statement = statement.where(transactions.c.type == type)
    if since:
        statement = statement.where(transactions.c.created_at >= since)
    if until:
        statement = statement.where(transactions.c.created_at < until)
    return statement


def held_points_of(
    account_id: Any, now: Any, dialect: str, excluding: int | None = None
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


def merchant_transaction(
    session: Session, public_id: str, merchant_id: int | None, type: str
) -> Any:
    """The merchant's own purchase (`earn`) or redemption (`redeem`); merchant None: the
    operator's (a redemption of its rewards or draws). Another merchant's is not found, like one
    that does not exist (SPEC 3.2)."""
    whose = (
        transactions.c.merchant_id.is_(None)
        if merchant_id is None
        else transactions.c.merchant_id == merchant_id
    )
    row = session.execute(
        select(transactions).where(
            transactions.c.public_id == public_id, whose, transactions.c.type == type
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no such {'purchase' if type == 'earn' else 'redemption'}")
    return row
