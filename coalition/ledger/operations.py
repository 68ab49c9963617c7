"""Spending and undoing (SPEC 2): redeem points at a merchant, claw back a refunded purchase's
points, reverse a redemption. Awards are `coalition.ledger.awards`, holds
`coalition.ledger.holds`, expiry `coalition.ledger.expiry`.

Each takes a session and plain values, runs inside the caller's database transaction, locks the
member account it changes (the only row it updates besides that member's lots), writes its
transaction, transfers, lot consumptions and outbox event with bulk statements, and returns a
plain dict. Refusals raise `coalition.errors` exceptions before anything is written."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from coalition import outbox
from coalition.database import table
from coalition.errors import AlreadyReversed, InsufficientPoints, RefundExceedsPurchase
from coalition.ledger import lots as lotplan
from coalition.ledger import shapes
from coalition.ledger.accounts import (
    MemberAccount,
    lock_member_accounts,
    lock_or_reuse,
    member_view,
    merchant_account_id,
    operator_account_id,
    store_balances,
)
from coalition.ledger.models import LOT_SOURCES, Lot, LotConsumption, Transaction, Transfer
from coalition.ledger.reads import held_points, merchant_transaction
from coalition.ledger.rows import (
    Actor,
    check_amount,
    check_points,
    insert_returning_ids,
    new_transaction,
    transfer_row,
)

transactions = table(Transaction)
transfers = table(Transfer)
lots = table(Lot)
consumptions = table(LotConsumption)


def spend(
    session: Session,
    member: MemberAccount,
    *,
    merchant_id: int | None,
    points: int,
    held_elsewhere: int,
    actor: Actor,
    now: datetime,
    reason: str,
    external_id: str | None,
    hold_id: int | None,
    purpose: str | None = None,
) -> tuple[int, str]:
    """A redemption of `points` at `merchant_id` (None: at the operator, for its own rewards
    and draws) by a locked member (a redemption, or a hold's capture): its transaction, transfer
    and lot consumptions, and the new balance. Pending points are not available (SPEC 2)."""
    available = member.spendable - held_elsewhere
    if points > available:
        raise InsufficientPoints(
            f"the member has {max(available, 0)} points available, {points} were asked for",
            available=max(available, 0),
        )
    redeemer = _redeemer_account(session, merchant_id)
    transaction_id, public_id = new_transaction(
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
        purpose=purpose,
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


def _redeemer_account(session: Session, merchant_id: int | None) -> int:
    """The account a redemption credits: its merchant's, or the operator's (merchant None)."""
    if merchant_id is None:
        return operator_account_id(session)
    return merchant_account_id(session, merchant_id)


def redeem(
    session: Session,
    *,
    member_id: int,
    merchant_id: int | None,
    points: int,
    actor: Actor,
    now: datetime,
    external_id: str | None = None,
    reason: str = "redemption",
    locked: MemberAccount | None = None,
    member_public_id: str | None = None,
    value: Mapping[str, Any] | None = None,
    purpose: str | None = None,
) -> dict[str, Any]:
    """Spend points at a merchant (None: at the operator), soonest-expiring lots first. Refused
    with `insufficient_points` when the available balance (balance less active holds and
    pending points) is short.
    `locked`: the member's account, when the caller already holds its lock (it checked
    something under it first, such as an external id). `value`: what the points are worth, as
    the caller priced them for its answer (else priced here); `member_public_id`: the member's
    id, when the caller knows it (else read): both for the event.
    `purpose` (`TRANSACTION_PURPOSES`): what the points paid for, when not a discount at a
    till. Such a redemption writes no `redemption.created` event: the order or the draw entry
    it pays for is announced by its own package, in the same transaction."""
    check_points(points)
    member = lock_or_reuse(session, member_id, locked)
    held = held_points(session, member.id, now)
    _, public_id = spend(
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
        purpose=purpose,
    )
    transaction = {"id": public_id, "type": "redeem", "points": points}
    if purpose is None:
        outbox.emit(
            session,
            "redemption.created",
            {
                "transaction": shapes.redemption(
                    public_id, points, value or shapes.redemption_value(session, points, now)
                ),
                "member": shapes.member(session, member.member_id, member_public_id),
            },
            now,
            merchant_id=merchant_id,
            member_id=member.member_id,
        )
    return {"transaction": transaction, "member": member_view(member, held)}


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
    member_public_id: str | None = None,
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
        select(
            lots.c.id,
            lots.c.source,
            lots.c.points,
            lots.c.remaining,
            lots.c.issuer_account_id,
            lotplan.pending().label("pending"),
        )
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

    transaction_id, public_id = new_transaction(
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
        # SPEC 2, Pending points: what a refund takes from its purchase's still-pending lots is
        # cancelled (`cancel`): those points were never issued, so no money moves for them.
        still_pending = {lot.id for lot in own_lots if lot.pending}
        lotplan.record(
            session,
            [
                lotplan.Consumed(
                    member.id,
                    tid,
                    take,
                    "cancel" if take.lot_id in still_pending else "clawback",
                    issuer_of[source],
                )
                for (source, _), tid, piece in zip(portions, transfer_ids, pieces, strict=True)
                for take in piece
            ],
            now,
        )
        shortfall = sum(t.points for piece in pieces for t in piece if t.lot_id is None)
        member.pending -= sum(
            t.points for piece in pieces for t in piece if t.lot_id in still_pending
        )
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
    amount = shapes.money(amount_minor, purchase.currency)
    outbox.emit(
        session,
        "purchase.refunded",
        {
            "transaction": shapes.refund(public_id, purchase_id, amount, total, clawed),
            "member": shapes.member(session, member.member_id, member_public_id),
        },
        now,
        merchant_id=merchant_id,
        member_id=member.member_id,
    )
    return {
        "transaction": transaction,
        "member": member_view(member, held_points(session, member.id, now)),
    }


def reverse_redemption(
    session: Session,
    *,
    redemption_id: str,
    merchant_id: int | None,
    actor: Actor,
    now: datetime,
    reason: str = "redemption reversed",
    member_public_id: str | None = None,
) -> dict[str, Any]:
    """Undo a redemption at `merchant_id` (None: at the operator): its points go back to the
    lots they came from (SPEC 3.3). A redemption is reversed at most once; the database refuses
    a second reversal too. The reversal keeps the redemption's purpose; one with a purpose (an
    order cancelled) writes no `redemption.reversed` event, its package announces it."""
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
    redeemer = _redeemer_account(session, merchant_id)
    transaction_id, public_id = new_transaction(
        session,
        type="reversal",
        member=member,
        merchant_id=merchant_id,
        points=original.points,
        actor=actor,
        reason=reason,
        now=now,
        original_id=original.id,
        purpose=original.purpose,
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
    # SPEC 2: restored points of a member in debt repay it first.
    repaid = lotplan.debt_repaid(member)
    if repaid:
        credited = lotplan.open_lots(session, member.id, repaid)
        restored = {c.lot_id: transfer_id for c in spent}
        lotplan.record(
            session,
            lotplan.repayments(member, credited, restored, repaid, operator_account_id(session)),
            now,
        )
        member.debt -= repaid
    store_balances(session, [member])

    transaction = {
        "id": public_id,
        "type": "reversal",
        "redemption": redemption_id,
        "points": original.points,
        "debt_repaid": repaid,
    }
    if original.purpose is None:
        outbox.emit(
            session,
            "redemption.reversed",
            {
                "transaction": shapes.reversal(public_id, redemption_id, original.points),
                "member": shapes.member(session, member.member_id, member_public_id),
            },
            now,
            merchant_id=merchant_id,
            member_id=member.member_id,
        )
    return {
        "transaction": transaction,
        "member": member_view(member, held_points(session, member.id, now)),
    }
