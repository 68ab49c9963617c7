"""Read-only questions about a member's points. No locks: a read sees the last committed state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition.database import table
from coalition.errors import NotFound
from coalition.ledger.models import Account
from coalition.ledger.operations import held_points

accounts = table(Account)


def balance(session: Session, member_id: int, now: datetime) -> dict[str, int]:
    """`balance` (negative only by clawback debt), `held` by active holds, and `available`:
    balance less holds, never below zero."""
    row = session.execute(
        select(accounts.c.id, accounts.c.balance, accounts.c.debt).where(
            accounts.c.member_id == member_id
        )
    ).one_or_none()
    if row is None:
        raise NotFound("no such member")
    held = held_points(session, row.id, now)
    return {
        "balance": row.balance,
        "available": max(row.balance - held, 0),
        "held": held,
        "debt": row.debt,
    }
