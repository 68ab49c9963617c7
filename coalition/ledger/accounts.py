"""Opening accounts and locking member accounts.

Lock order (QUALITY 1): an operation locks member account rows only, and always in ascending id
order, so two operations can never wait on each other in a circle. Merchant and operator accounts
are never locked: they are never updated."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from coalition.database import driver_cursor, table
from coalition.errors import NotFound
from coalition.ledger.models import Account

accounts = table(Account)


@dataclass
class MemberAccount:
    """A locked member account row, as read under its lock."""

    id: int
    member_id: int
    balance: int
    debt: int
    welcomed: bool = False
    # Of `balance`, the points still pending (SPEC 2): not spendable until confirmed.
    pending: int = 0

    @property
    def spendable(self) -> int:
        """Balance less pending points (holds are the caller's to subtract)."""
        return self.balance - self.pending


_LOCKED_COLUMNS = (
    accounts.c.id,
    accounts.c.member_id,
    accounts.c.balance,
    accounts.c.debt,
    accounts.c.welcomed,
    accounts.c.pending,
)


def open_member_account(session: Session, member_id: int) -> int:
    return session.execute(
        insert(accounts).values(kind="member", member_id=member_id).returning(accounts.c.id)
    ).scalar_one()


def open_merchant_account(session: Session, merchant_id: int) -> int:
    return session.execute(
        insert(accounts).values(kind="merchant", merchant_id=merchant_id).returning(accounts.c.id)
    ).scalar_one()


@dataclass(frozen=True)
class Issuers:
    """The accounts an award's lots are issued from: the merchant's and the operator's."""

    merchant: int
    operator: int


def issuer_columns(merchant_id: Any) -> tuple[Any, Any]:
    """The merchant's and the operator's account ids as two columns (`merchant_account`,
    `operator_account`), for a caller to read with whatever else it needs in one query."""
    return (
        select(accounts.c.id)
        .where(accounts.c.merchant_id == merchant_id)
        .scalar_subquery()
        .label("merchant_account"),
        select(accounts.c.id)
        .where(accounts.c.kind == "operator")
        .scalar_subquery()
        .label("operator_account"),
    )


def issuers_from(row: Any, merchant_id: int) -> Issuers:
    """The Issuers of a row read with `issuer_columns`."""
    if row.merchant_account is None:
        raise NotFound(f"merchant {merchant_id} has no account")
    return Issuers(row.merchant_account, row.operator_account)


def issuers(session: Session, merchant_id: int) -> Issuers:
    """Both issuer accounts of an award at `merchant_id`, in one query."""
    return issuers_from(session.execute(select(*issuer_columns(merchant_id))).one(), merchant_id)


def operator_account_id(session: Session) -> int:
    """The operator's account: made by the first migration, so it always exists."""
    return session.execute(select(accounts.c.id).where(accounts.c.kind == "operator")).scalar_one()


def merchant_account_id(session: Session, merchant_id: int) -> int:
    found = session.execute(
        select(accounts.c.id).where(accounts.c.merchant_id == merchant_id)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"merchant {merchant_id} has no account")
    return found


def lock_member(session: Session, member_id: int) -> MemberAccount:
    """Lock one member's account for the rest of the transaction and return it."""
    row = session.execute(
        select(*_LOCKED_COLUMNS).where(accounts.c.member_id == member_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFound("no such member")
    return MemberAccount(*row)


def lock_member_accounts(session: Session, account_ids: Iterable[int]) -> dict[int, MemberAccount]:
    """Lock several member accounts, in ascending id order (the global lock order)."""
    rows = session.execute(
        select(*_LOCKED_COLUMNS)
        .where(accounts.c.id.in_(sorted(set(account_ids))), accounts.c.kind == "member")
        .order_by(accounts.c.id)
        .with_for_update()
    ).all()
    return {row.id: MemberAccount(*row) for row in rows}


def store_balances(session: Session, changed: Iterable[MemberAccount]) -> None:
    """Write back locked member accounts: the one row per member that an operation updates.
    PostgreSQL: one statement whatever their number, several sent as arrays."""
    rows = list(changed)
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql" and len(rows) == 1:
        [one] = rows
        driver_cursor(
            connection,
            "UPDATE accounts SET balance = %s, debt = %s, welcomed = %s, pending = %s"
            " WHERE id = %s",
            (one.balance, one.debt, one.welcomed, one.pending, one.id),
        )
        return
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            "UPDATE accounts SET balance = given.balance, debt = given.debt,"
            " welcomed = given.welcomed, pending = given.pending"
            " FROM unnest(%b::bigint[], %b::bigint[], %b::bigint[], %b::boolean[], %b::bigint[])"
            " AS given(id, balance, debt, welcomed, pending) WHERE accounts.id = given.id",
            (
                [a.id for a in rows],
                [a.balance for a in rows],
                [a.debt for a in rows],
                [a.welcomed for a in rows],
                [a.pending for a in rows],
            ),
        )
        return
    connection.execute(
        update(accounts)
        .where(accounts.c.id == bindparam("aid"))
        .values(
            balance=bindparam("new_balance"),
            debt=bindparam("new_debt"),
            welcomed=bindparam("new_welcomed"),
            pending=bindparam("new_pending"),
        ),
        [
            {
                "aid": a.id,
                "new_balance": a.balance,
                "new_debt": a.debt,
                "new_welcomed": a.welcomed,
                "new_pending": a.pending,
            }
            for a in rows
        ],
    )


def lock_or_reuse(session: Session, member_id: int, locked: MemberAccount | None) -> MemberAccount:
    """The member's locked account: the one the caller locked already, or lock it now."""
    if locked is None:
        return lock_member(session, member_id)
    if locked.member_id != member_id:
        raise ValueError("the locked account is not this member's")
    return locked


def member_view(member: MemberAccount, held: int) -> dict[str, int]:
    """What an answer says of the member after an operation, `held` by its active holds:
    available is the balance less holds and pending points (SPEC 2)."""
    return {
        "balance": member.balance,
        "available": max(member.spendable - held, 0),
        "debt": member.debt,
    }
