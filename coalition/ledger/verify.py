"""`coalition verify-ledger`: every invariant of SPEC 2, each one set-based query that returns the
rows breaking it. TigerBeetle's habit: state the invariants, then check them, all the time (the
test suite runs this after every test that writes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import Select

from coalition import tenancy
from coalition.database import table
from coalition.ledger.models import Account, Hold, Lot, LotConsumption, Transaction, Transfer

accounts = table(Account)
transactions = table(Transaction)
transfers = table(Transfer)
lots = table(Lot)
consumptions = table(LotConsumption)
holds = table(Hold)

SHOWN_PER_CHECK = 20
TAKING_KINDS = ("redeem", "clawback", "expire", "debt", "cancel")


@dataclass(frozen=True)
class Check:
    name: str
    rule: str
    query: Callable[[], Select[Any]]


@dataclass(frozen=True)
class Violation:
    check: str
    rule: str
    rows: list[dict[str, Any]]


def _sum_by(column: Any, amount: Any, *where: Any) -> Any:
    return (
        select(column.label("key"), func.sum(amount).label("total"))
        .where(*where)
        .group_by(column)
        .subquery()
    )


def _transfer_shape() -> Select[Any]:
    return select(transfers.c.id, transfers.c.amount).where(
        or_(transfers.c.amount <= 0, transfers.c.debit_account_id == transfers.c.credit_account_id)
    )


def _transaction_totals() -> Select[Any]:
    moved = _sum_by(transfers.c.transaction_id, transfers.c.amount)
    total = func.coalesce(moved.c.total, 0)
    return (
        select(transactions.c.public_id, transactions.c.points, total.label("transferred"))
        .select_from(transactions.outerjoin(moved, moved.c.key == transactions.c.id))
        .where(transactions.c.points != total)
    )


def _member_balances() -> Select[Any]:
    credits = _sum_by(transfers.c.credit_account_id, transfers.c.amount)
    debits = _sum_by(transfers.c.debit_account_id, transfers.c.amount)
    entries = func.coalesce(credits.c.total, 0) - func.coalesce(debits.c.total, 0)
    return (
        select(accounts.c.id.label("account"), accounts.c.balance, entries.label("entries"))
        .select_from(
            accounts.outerjoin(credits, credits.c.key == accounts.c.id).outerjoin(
                debits, debits.c.key == accounts.c.id
            )
        )
        .where(accounts.c.kind == "member", accounts.c.balance != entries)
    )


def _lot_remaining() -> Select[Any]:
    signed = case(
        (consumptions.c.kind == "restore", consumptions.c.points),
        (consumptions.c.kind == "confirm", literal(0)),
        else_=-consumptions.c.points,
    )
    moved = _sum_by(consumptions.c.lot_id, signed, consumptions.c.lot_id.is_not(None))
    expected = lots.c.points + func.coalesce(moved.c.total, 0)
    return (
        select(lots.c.id.label("lot"), lots.c.remaining, expected.label("expected"))
        .select_from(lots.outerjoin(moved, moved.c.key == lots.c.id))
        .where(lots.c.remaining != expected)
    )


def _lot_origin() -> Select[Any]:
    return (
        select(lots.c.id.label("lot"), lots.c.points, transfers.c.amount)
        .select_from(lots.join(transfers, transfers.c.id == lots.c.transfer_id))
        .where(
            or_(
                transfers.c.kind != "award",
                transfers.c.amount != lots.c.points,
                transfers.c.credit_account_id != lots.c.account_id,
                transfers.c.debit_account_id != lots.c.issuer_account_id,
            )
        )
    )


def _lot_is_pending() -> Any:
    return and_(lots.c.pending_until.is_not(None), lots.c.confirmed_at.is_(None))


def _open_lots_match_balance() -> Select[Any]:
    open_points = _sum_by(lots.c.account_id, lots.c.remaining)
    spendable = _sum_by(lots.c.account_id, lots.c.remaining, ~_lot_is_pending())
    total = func.coalesce(open_points.c.total, 0)
    return (
        select(
            accounts.c.id.label("account"),
            accounts.c.balance,
            accounts.c.debt,
            total.label("open_lots"),
        )
        .select_from(
            accounts.outerjoin(open_points, open_points.c.key == accounts.c.id).outerjoin(
                spendable, spendable.c.key == accounts.c.id
            )
        )
        .where(
            accounts.c.kind == "member",
            or_(
                total != accounts.c.balance + accounts.c.debt,
                and_(accounts.c.debt > 0, func.coalesce(spendable.c.total, 0) != 0),
            ),
        )
    )


def _pending_matches_lots() -> Select[Any]:
    """SPEC 2, Pending points: a member's `pending` is what its pending lots still hold, never
    less than zero nor more than its open lots; only members have pending points."""
    held = _sum_by(lots.c.account_id, lots.c.remaining, _lot_is_pending())
    total = func.coalesce(held.c.total, 0)
    return (
        select(accounts.c.id.label("account"), accounts.c.pending, total.label("pending_lots"))
        .select_from(accounts.outerjoin(held, held.c.key == accounts.c.id))
        .where(
            or_(
                accounts.c.pending != total,
                accounts.c.pending < 0,
                accounts.c.pending > accounts.c.balance + accounts.c.debt,
                and_(accounts.c.kind != "member", accounts.c.pending != 0),
            )
        )
    )


def _pending_lots_untouched() -> Select[Any]:
    """A pending lot gives points only to a refund of its own purchase or to its member's
    erasure (`cancel`, never after its confirmation); every other consumption of a lot that
    was pending comes at or after its confirmation; a lot awarded without a window is never
    cancelled nor confirmed."""
    taker = aliased(transactions)
    awarded = aliased(transfers)
    return (
        select(consumptions.c.id.label("consumption"), consumptions.c.kind, lots.c.id.label("lot"))
        .select_from(
            consumptions.join(lots, lots.c.id == consumptions.c.lot_id)
            .join(transfers, transfers.c.id == consumptions.c.transfer_id)
            .join(taker, taker.c.id == transfers.c.transaction_id)
            .join(awarded, awarded.c.id == lots.c.transfer_id)
        )
        .where(
            or_(
                and_(
                    consumptions.c.kind.in_(("cancel", "confirm")),
                    lots.c.pending_until.is_(None),
                ),
                and_(
                    consumptions.c.kind == "cancel",
                    or_(
                        # A refund of the lot's own purchase, or the write-off of an erasure.
                        and_(
                            transfers.c.kind != "clawback",
                            or_(transfers.c.kind != "expire", taker.c.reason != "erasure"),
                        ),
                        and_(
                            transfers.c.kind == "clawback",
                            taker.c.original_id != awarded.c.transaction_id,
                        ),
                        consumptions.c.created_at > lots.c.confirmed_at,
                    ),
                ),
                and_(
                    consumptions.c.kind.not_in(("cancel", "confirm")),
                    lots.c.pending_until.is_not(None),
                    or_(
                        lots.c.confirmed_at.is_(None),
                        consumptions.c.created_at < lots.c.confirmed_at,
                    ),
                ),
            )
        )
    )


def _confirmations() -> Select[Any]:
    """Each confirmed lot's one `confirm` record (none if a refund cancelled all of it) is
    dated at its confirmation, names its award transfer, and confirms exactly the points no
    refund cancelled: what settlement counts as issued that day."""
    confirm = aliased(consumptions)
    cancelled = _sum_by(
        consumptions.c.lot_id, consumptions.c.points, consumptions.c.kind == "cancel"
    )
    confirmed = _sum_by(confirm.c.lot_id, confirm.c.points, confirm.c.kind == "confirm")
    records = _sum_by(confirm.c.lot_id, literal(1), confirm.c.kind == "confirm")
    left = lots.c.points - func.coalesce(cancelled.c.total, 0)
    stray = aliased(consumptions)
    return (
        select(
            lots.c.id.label("lot"), left.label("uncancelled"), confirmed.c.total.label("confirmed")
        )
        .select_from(
            lots.outerjoin(cancelled, cancelled.c.key == lots.c.id)
            .outerjoin(confirmed, confirmed.c.key == lots.c.id)
            .outerjoin(records, records.c.key == lots.c.id)
        )
        .where(
            or_(
                and_(lots.c.confirmed_at.is_(None), confirmed.c.total.is_not(None)),
                and_(
                    lots.c.confirmed_at.is_not(None),
                    func.coalesce(confirmed.c.total, 0) != left,
                ),
                func.coalesce(records.c.total, 0) > 1,
                select(stray.c.id)
                .where(
                    stray.c.lot_id == lots.c.id,
                    stray.c.kind == "confirm",
                    or_(
                        stray.c.transfer_id != lots.c.transfer_id,
                        stray.c.created_at != lots.c.confirmed_at,
                        stray.c.redeemer_account_id != lots.c.issuer_account_id,
                    ),
                )
                .exists(),
            )
        )
    )


def _debt_matches_records() -> Select[Any]:
    signed = case(
        (consumptions.c.kind == "debt", consumptions.c.points), else_=-consumptions.c.points
    )
    owed = _sum_by(
        consumptions.c.member_account_id, signed, consumptions.c.kind.in_(("debt", "repay"))
    )
    total = func.coalesce(owed.c.total, 0)
    return (
        select(accounts.c.id.label("account"), accounts.c.debt, total.label("recorded"))
        .select_from(accounts.outerjoin(owed, owed.c.key == accounts.c.id))
        .where(accounts.c.kind == "member", accounts.c.debt != total)
    )


def _consumptions_match_transfers() -> Select[Any]:
    taken = _sum_by(
        consumptions.c.transfer_id, consumptions.c.points, consumptions.c.kind.in_(TAKING_KINDS)
    )
    restored = _sum_by(
        consumptions.c.transfer_id, consumptions.c.points, consumptions.c.kind == "restore"
    )
    expected = case(
        (transfers.c.kind.in_(("redeem", "clawback", "expire")), func.coalesce(taken.c.total, 0)),
        (transfers.c.kind == "reverse", func.coalesce(restored.c.total, 0)),
        else_=transfers.c.amount,
    )
    # Awards and reversals take nothing from lots (their repayments are "repay", not counted);
    # only reversals restore.
    unexpected = case(
        (transfers.c.kind.in_(("award", "reverse")), func.coalesce(taken.c.total, 0)),
        else_=literal(0),
    ) + case((transfers.c.kind != "reverse", func.coalesce(restored.c.total, 0)), else_=literal(0))
    return (
        select(
            transfers.c.id.label("transfer"),
            transfers.c.kind,
            transfers.c.amount,
            expected.label("recorded"),
        )
        .select_from(
            transfers.outerjoin(taken, taken.c.key == transfers.c.id).outerjoin(
                restored, restored.c.key == transfers.c.id
            )
        )
        .where(or_(transfers.c.amount != expected, unexpected != 0))
    )


def _consumption_parties() -> Select[Any]:
    """Each record names the lot's issuer, the member whose lot it is, and the account its
    transfer credited (a restore: the redeemer whose redemption it undoes; a repay: the
    operator)."""
    undone = aliased(consumptions)
    operator = select(accounts.c.id).where(accounts.c.kind == "operator").scalar_subquery()
    return (
        select(consumptions.c.id.label("consumption"), consumptions.c.kind)
        .select_from(
            consumptions.join(transfers, transfers.c.id == consumptions.c.transfer_id)
            .outerjoin(lots, lots.c.id == consumptions.c.lot_id)
            .outerjoin(undone, undone.c.id == consumptions.c.restores_id)
        )
        .where(
            or_(
                and_(
                    consumptions.c.lot_id.is_not(None),
                    or_(
                        lots.c.issuer_account_id != consumptions.c.issuer_account_id,
                        lots.c.account_id != consumptions.c.member_account_id,
                    ),
                ),
                and_(
                    consumptions.c.kind.in_(TAKING_KINDS),
                    or_(
                        transfers.c.debit_account_id != consumptions.c.member_account_id,
                        transfers.c.credit_account_id != consumptions.c.redeemer_account_id,
                    ),
                ),
                and_(
                    consumptions.c.kind == "repay", consumptions.c.redeemer_account_id != operator
                ),
                and_(
                    consumptions.c.kind == "restore",
                    or_(
                        undone.c.id.is_(None),
                        undone.c.lot_id != consumptions.c.lot_id,
                        undone.c.points != consumptions.c.points,
                        undone.c.redeemer_account_id != consumptions.c.redeemer_account_id,
                    ),
                ),
            )
        )
    )


def _reversals_mirror() -> Select[Any]:
    original = aliased(transactions)
    return (
        select(transactions.c.public_id.label("reversal"))
        .select_from(transactions.outerjoin(original, original.c.id == transactions.c.original_id))
        .where(
            transactions.c.type == "reversal",
            or_(
                original.c.id.is_(None),
                original.c.type != "redeem",
                original.c.points != transactions.c.points,
            ),
        )
    )


def _captures_match_holds() -> Select[Any]:
    return (
        select(holds.c.public_id.label("hold"), holds.c.captured_points, transactions.c.points)
        .select_from(holds.outerjoin(transactions, transactions.c.hold_id == holds.c.id))
        .where(
            or_(
                and_(
                    holds.c.status == "captured",
                    or_(
                        transactions.c.id.is_(None),
                        transactions.c.points != holds.c.captured_points,
                    ),
                ),
                and_(holds.c.status != "captured", transactions.c.id.is_not(None)),
            )
        )
    )


CHECKS = (
    Check(
        "transfer_shape",
        "every transfer moves a positive amount between two accounts",
        _transfer_shape,
    ),
    Check(
        "transaction_totals",
        "each transaction's points equal the sum of its transfers",
        _transaction_totals,
    ),
    Check(
        "member_balances",
        "each member balance equals its credits minus its debits",
        _member_balances,
    ),
    Check(
        "lot_origin",
        "each lot was created by one award transfer of its size, from its issuer to its member",
        _lot_origin,
    ),
    Check(
        "lot_remaining",
        "each lot's remaining points equal its points less consumptions plus restores",
        _lot_remaining,
    ),
    Check(
        "open_lots",
        "each member's open lots equal its balance plus its debt; a member in debt has no"
        " spendable open lot",
        _open_lots_match_balance,
    ),
    Check(
        "pending",
        "each member's pending points equal what its pending lots hold, within its open lots",
        _pending_matches_lots,
    ),
    Check(
        "pending_lots",
        "a pending lot gives points only to a refund of its own purchase or to an erasure, never"
        " after its confirmation; nothing else takes from a lot before it is confirmed",
        _pending_lots_untouched,
    ),
    Check(
        "confirmations",
        "each confirmed lot has one confirmation, at its confirmation, of the points no refund"
        " cancelled",
        _confirmations,
    ),
    Check(
        "debt",
        "each member's debt equals the debt its clawbacks recorded less what later awards repaid",
        _debt_matches_records,
    ),
    Check(
        "consumptions",
        "the lot consumptions of each redemption, clawback, expiry and reversal"
        " add up to its transfer",
        _consumptions_match_transfers,
    ),
    Check(
        "consumption_parties",
        "each lot consumption names its lot's issuer and member and its transfer's redeemer",
        _consumption_parties,
    ),
    Check("reversals", "each reversal undoes one redemption, in full", _reversals_mirror),
    Check(
        "holds",
        "a captured hold has exactly its capture, and no other hold has one",
        _captures_match_holds,
    ),
)


def _plain(row: Any) -> dict[str, Any]:
    # PostgreSQL's SUM over bigint is numeric; points are whole numbers.
    return {k: int(v) if isinstance(v, Decimal) else v for k, v in row.items()}


def verify(session: Session) -> list[Violation]:
    """Every broken invariant, with up to SHOWN_PER_CHECK offending rows each; empty when sound.
    It reads every tenant's rows, as the system."""
    found = []
    with tenancy.acting_as(tenancy.SYSTEM, session):
        for check in CHECKS:
            rows = session.execute(check.query().limit(SHOWN_PER_CHECK)).mappings().all()
            if rows:
                found.append(Violation(check.name, check.rule, [_plain(r) for r in rows]))
    return found
