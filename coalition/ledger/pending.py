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

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from coalition import outbox
from coalition.database import table
from coalition.ledger import lots as lotplan
from coalition.ledger.accounts import operator_account_id, store_balances
from coalition.ledger.models import Lot

lots = table(Lot)


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
