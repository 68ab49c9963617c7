"""The operator's decisions on fraud alerts (SPEC 3.10): an open alert is dismissed, with a
reason, or confirmed, once; each decision is written to the audit log with its staff or client
as the actor. The only writer of an alert's state."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from coalition import audit, tenancy
from coalition.errors import CoalitionError, InvalidRequest, NotFound
from coalition.fraud import reads
from coalition.fraud.models import fraud_alerts

MAX_REASON: Final = 2000


class AlertDecided(CoalitionError):
    status, code, title = 409, "alert_decided", "Alert decided already"


def dismiss(
    session: Session, alert_id: str, reason: str, actor: audit.Actor, now: datetime
) -> dict[str, Any]:
    """Dismiss an open alert: the reason (required) says why it is no fraud. Its lines are
    joined into one; control characters are refused (a database cannot hold them all)."""
    reason = " ".join(reason.split())
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in reason):
        raise InvalidRequest(
            "the reason holds control characters", errors={"reason": ["Plain text only."]}
        )
    if not reason:
        raise InvalidRequest(
            "a dismissal needs a reason", errors={"reason": ["Say why this is no fraud."]}
        )
    if len(reason) > MAX_REASON:
        raise InvalidRequest(
            "the reason is too long", errors={"reason": [f"At most {MAX_REASON} characters."]}
        )
    return _decide(session, alert_id, "dismissed", reason, actor, now)


def confirm(session: Session, alert_id: str, actor: audit.Actor, now: datetime) -> dict[str, Any]:
    """Confirm an open alert: the operator judges it fraud."""
    return _decide(session, alert_id, "confirmed", None, actor, now)


def _decide(
    session: Session,
    alert_id: str,
    state: str,
    reason: str | None,
    actor: audit.Actor,
    now: datetime,
) -> dict[str, Any]:
    with tenancy.acting_as(tenancy.OPERATOR, session):
        # One conditional UPDATE: of two decisions at once, exactly one is taken.
        done = session.execute(
            update(fraud_alerts)
            .where(fraud_alerts.c.public_id == alert_id, fraud_alerts.c.state == "open")
            .values(state=state, reason=reason, decided_by=actor.label, decided_at=now)
            .returning(fraud_alerts.c.id)
        ).one_or_none()
        if done is None:
            current = session.execute(
                select(fraud_alerts.c.state).where(fraud_alerts.c.public_id == alert_id)
            ).scalar_one_or_none()
            if current is None:
                raise NotFound("no such fraud alert")
            raise AlertDecided(f"the alert is {current} already", state=current)
        audit.record(
            session,
            actor,
            f"fraud_alert.{'dismiss' if state == 'dismissed' else 'confirm'}",
            "fraud_alert",
            alert_id,
            before={"state": "open"},
            after={"state": state, **({"reason": reason} if reason else {})},
            now=now,
        )
        return reads.alert(session, alert_id)
