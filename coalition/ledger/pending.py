"""Pending points (SPEC 2): the nightly confirmation of lots whose merchant's pending window has
ended. Confirming a lot writes one `confirm` lot consumption of the points it still has (a
refund inside the window may have cancelled some), dated when it is written, against the lot's
own award transfer: the immutable record settlement prices as those points' issue on that day.
The lot gets its `confirmed_at` (its points become spendable) and the member's `pending` falls;
confirmed points of a member in debt repay it first (`repay`, as a new award's would).

Set-based and resumable like expiry: up to `limit` members per call, their accounts locked in
ascending id order, their due lots read again under the locks, one statement per table; a call
that finds nothing due returns 0, so running the job twice confirms nothing twice."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from coalition import outbox
from coalition.database import table
from coalition.ledger import lots as lotplan
from coalition.ledger.accounts import MemberAccount, operator_account_id, store_balances
from coalition.ledger.models import Lot, Transaction, Transfer
from coalition.ledger.reads import members as member_rows

lots = table(Lot)
transfers = table(Transfer)
transactions = table(Transaction)


def confirm_due_lots(
    session: Session, *, cutoff: datetime, now: datetime, limit: int = 1000
) -> int:
    """Confirm the pending lots of up to `limit` members whose window ended at or before
    `cutoff`. Returns how many members were touched; call again, in a new transaction, until
    it returns 0."""
    due = [lotplan.pending(), lots.c.pending_until <= cutoff]
    members, by_account = lotplan.due_lots_by_member(session, due, limit)
    if not members:
        return 0
    if not by_account:
        # Another run confirmed them meanwhile: those members are done; look again.
        return len(members)
    rows = [lot for account_lots in by_account.values() for lot in account_lots]
    session.execute(
        update(lots).where(lots.c.id.in_([lot.id for lot in rows])).values(confirmed_at=now)
    )
    operator = operator_account_id(session)
    consumed: list[lotplan.Consumed] = []
    touched = [members[a] for a in sorted(by_account)]
    for member in touched:
        confirmed = [lot for lot in by_account[member.id] if lot.remaining > 0]
        points = sum(lot.remaining for lot in confirmed)
        consumed += [
            lotplan.Consumed(
                member.id,
                lot.transfer_id,
                lotplan.Take(lot.id, lot.issuer_account_id, lot.remaining),
                "confirm",
                lot.issuer_account_id,
            )
            for lot in confirmed
        ]
        member.pending -= points
        # SPEC 2: points newly spendable repay a debt first, from these lots in spending order.
        repaid = lotplan.debt_repaid(member)
        if repaid:
            consumed += lotplan.repayments(
                member,
                [
                    lotplan.OpenLot(lot.id, lot.issuer_account_id, lot.remaining)
                    for lot in confirmed
                ],
                {lot.id: lot.transfer_id for lot in confirmed},
                repaid,
                operator,
            )
            member.debt -= repaid
    lotplan.record(session, consumed, now)
    store_balances(session, touched)
    outbox.record(session, _confirmed_events(session, members, by_account, now))
    return len(touched)


def _confirmed_events(
    session: Session,
    members: dict[int, MemberAccount],
    by_account: dict[int, list[Any]],
    now: datetime,
) -> list[dict[str, Any]]:
    """`points.confirmed`, one per member and merchant whose purchases' points were confirmed
    (SPEC 3.6: its own transactions; the operator-funded welcome and tier points of a purchase
    are that purchase's): the member by public id, the points and, per purchase, its points
    confirmed. A lot refunded in full inside its window is confirmed silently (decision 224);
    a member's debt, which other shops' refunds may have made, is no merchant's business."""
    confirmed = [lot for account_lots in by_account.values() for lot in account_lots]
    confirmed = [lot for lot in confirmed if lot.remaining > 0]
    if not confirmed:
        return []
    purchases = {
        row.transfer_id: row
        for row in session.execute(
            select(
                transfers.c.id.label("transfer_id"),
                transactions.c.public_id,
                transactions.c.merchant_id,
            )
            .join(transactions, transactions.c.id == transfers.c.transaction_id)
            .where(transfers.c.id.in_(sorted({lot.transfer_id for lot in confirmed})))
        )
    }
    public_ids = dict(
        session.execute(
            select(member_rows.c.id, member_rows.c.public_id).where(
                member_rows.c.id.in_(sorted({members[a].member_id for a in by_account}))
            )
        ).all()
    )
    grouped: dict[tuple[int, int], dict[str, int]] = defaultdict(dict)
    for lot in confirmed:
        purchase = purchases[lot.transfer_id]
        points = grouped[(lot.account_id, purchase.merchant_id)]
        points[purchase.public_id] = points.get(purchase.public_id, 0) + lot.remaining
    return [
        outbox.event_row(
            "points.confirmed",
            {
                "member": {"id": public_ids[members[account_id].member_id]},
                "points": sum(points.values()),
                "purchases": [{"id": txn, "points": n} for txn, n in sorted(points.items())],
            },
            now,
            merchant_id=merchant_id,
            member_id=members[account_id].member_id,
        )
        for (account_id, merchant_id), points in sorted(grouped.items())
    ]
