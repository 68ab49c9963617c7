"""What every ledger write shares (awards, spending, holds, refunds, reversals, expiry): who
acts (`Actor`), the bounds and checks on the values a caller passes in, the transaction and
transfer rows, and the bulk insert that gives back the new ids in order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from coalition.database import insert_rows, table
from coalition.errors import InvalidRequest
from coalition.ids import new_id
from coalition.ledger.accounts import MemberAccount
from coalition.ledger.models import Transaction

transactions = table(Transaction)

ACTOR_TYPES = ("merchant_client", "member", "operator_user", "job", "system")

# Bounds on what one call may move (TIGER_STYLE: a limit on everything).
MAX_POINTS = 10**12
MAX_AMOUNT_MINOR = 10**15


@dataclass(frozen=True)
class Actor:
    """Who caused an operation: a merchant's client, a member, an operator user, or a job."""

    type: str
    id: str | None = None

    def __post_init__(self) -> None:
        if self.type not in ACTOR_TYPES:
            raise ValueError(f"unknown actor type {self.type!r}")


def check_points(points: Any, name: str = "points", allow_zero: bool = False) -> int:
    """`points` when a whole number from 1 (0 with `allow_zero`) to MAX_POINTS; else
    `validation_error` naming `name`."""
    low = 0 if allow_zero else 1
    if isinstance(points, bool) or not isinstance(points, int) or not low <= points <= MAX_POINTS:
        raise InvalidRequest(f"{name} must be a whole number from {low} to {MAX_POINTS}")
    return points


def check_amount(amount_minor: Any, name: str, low: int) -> int:
    """`amount_minor` when a whole number of minor units from `low` to MAX_AMOUNT_MINOR."""
    if (
        isinstance(amount_minor, bool)
        or not isinstance(amount_minor, int)
        or not low <= amount_minor <= MAX_AMOUNT_MINOR
    ):
        raise InvalidRequest(f"{name} must be a whole number of minor units from {low}")
    return amount_minor


def insert_returning_ids(session: Session, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Bulk insert, ids in the order of `rows` (`coalition.database.insert_rows`)."""
    return insert_rows(session, table, rows)


def transfer_row(
    transaction_id: int, kind: str, debit: int, credit: int, amount: int, now: datetime
) -> dict[str, Any]:
    """A transfer of `amount` points from the `debit` account to the `credit` one."""
    return {
        "transaction_id": transaction_id,
        "kind": kind,
        "debit_account_id": debit,
        "credit_account_id": credit,
        "amount": amount,
        "created_at": now,
    }


def new_transaction(
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
    """Insert an operation's transaction row; its id and public id."""
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
