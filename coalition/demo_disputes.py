"""The demo's statement dispute (issue 16): once the demo's history is settled and stated, the
first partner with a statement of the latest month stated (the demo's first partner, whose
portal sign-in it prints, when it traded) disputes the points redeemed at its shop on that
statement, and the demo's staff admin answers with a credit note of 40 points' value. The
note waits for the partner's next statement, as any note does; the disputed statement stays as
it was."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import audit, economics
from settlement import disputes
from settlement.statements import statements

REASON = "Our till counted 40 more points redeemed here this month than this line shows."
ANSWER = "Confirmed from the till's journal: 40 points were left out."
POINTS = 40


def one_resolved(session: Session, staff: audit.Actor, now: datetime) -> dict[str, int]:
    """Raise and resolve the demo's dispute; nothing when no month has been stated yet."""
    latest = session.execute(
        select(statements.c.public_id, statements.c.merchant_id, statements.c.lines)
        .order_by(statements.c.month.desc(), statements.c.merchant_id)
        .limit(1)
    ).first()
    if latest is None or not latest.lines:
        return {"disputes": 0}
    kinds = [line["kind"] for line in latest.lines]
    line = kinds.index("reimbursements") + 1 if "reimbursements" in kinds else 1
    raised = disputes.raise_dispute(
        session, latest.merchant_id, latest.public_id, line, REASON, now
    )
    terms = economics.terms_at(now, session=session)
    value = Decimal(terms.point_value) * POINTS
    minor = int(value.scaleb(economics.MINOR_UNIT_DIGITS[terms.currency]).to_integral_value())
    disputes.resolve(
        session, raised["id"], "credit_note", minor, terms.currency, ANSWER, staff, now
    )
    session.commit()
    return {"disputes": 1}
