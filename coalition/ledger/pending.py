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
from coalition.ledger.accounts import lock_member_accounts, operator_account_id, store_balances
from coalition.ledger.models import Lot

lots = table(Lot)


def confirm_due_lots(
    session: Session, *, cutoff: datetime, now: datetime, limit: int = 1000
) -> int:
    """Confirm the pending lots of up to `limit` members whose window ended at or before
    `cutoff`. Returns how many members were touched; call again, in a new transaction, until
    it returns 0."""
    due = [lotplan.pending(), lots.c.pending_until <= cutoff]
    account_ids = (
        session.execute(
            select(lots.c.account_id)
            .where(*due)
            .group_by(lots.c.account_id)
            .order_by(lots.c.account_id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    if not account_ids:
        return 0
    members = lock_member_accounts(session, account_ids)
    # Read again under the locks: a refund may have cancelled some points (or a whole lot)
    # meanwhile, and another run may have confirmed them.
    rows = session.execute(
        select(
            lots.c.id,
            lots.c.account_id,
            lots.c.issuer_account_id,
            lots.c.transfer_id,
            lots.c.remaining,
        )
        .where(lots.c.account_id.in_(account_ids), *due)
        .order_by(lots.c.account_id, lots.c.expires_at, lots.c.id)
    ).all()
    if not rows:
        # Another run confirmed them meanwhile: those members are done; look again.
        return len(account_ids)
    by_account: dict[int, list[Any]] = defaultdict(list)
    for lot in rows:
        by_account[lot.account_id].append(lot)
    session.execute(
        update(lots).where(lots.c.id.in_([lot.id for lot in rows])).values(confirmed_at=now)
    )
    operator = operator_account_id(session)
    consumed: list[lotplan.Consumed] = []
    events = []
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
        if points:
            events.append(
                outbox.event_row(
                    "points.confirmed",
                    {"points": points, "debt_repaid": repaid},
                    now,
                    member_id=member.member_id,
                )
            )
    lotplan.record(session, consumed, now)
    store_balances(session, touched)
    outbox.record(session, events)
    return len(touched)
