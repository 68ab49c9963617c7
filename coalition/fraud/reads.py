"""The operator's view of fraud events and of the nightly report's alerts, newest first: a
console page at a time, or the API's cursor pages. Members and merchants are named by their
public ids (and the merchant by name)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, column, func, select
from sqlalchemy import table as core_table
from sqlalchemy.orm import Session

from coalition.errors import NotFound
from coalition.fraud.models import (
    ALERT_KINDS,
    ALERT_STATES,
    FRAUD_KINDS,
    fraud_alerts,
    fraud_events,
)

# Named rather than imported: the core does not import `merchants`, and members build on it.
members = core_table("members", column("id"), column("public_id"))
merchants = core_table("merchants", column("id"), column("public_id"), column("name"))

KINDS = FRAUD_KINDS
ALERT_KIND_NAMES = ALERT_KINDS

STATES = ALERT_STATES


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    has_previous: bool
    has_next: bool


def query() -> Select[Any]:
    """Every fraud event with its member's and merchant's public ids."""
    return (
        select(
            fraud_events.c.id,
            fraud_events.c.kind,
            fraud_events.c.details,
            fraud_events.c.at,
            members.c.public_id.label("member"),
            merchants.c.public_id.label("merchant"),
            merchants.c.name.label("merchant_name"),
        )
        .outerjoin(members, members.c.id == fraud_events.c.member_id)
        .outerjoin(merchants, merchants.c.id == fraud_events.c.merchant_id)
    )


def view(row: Any) -> dict[str, Any]:
    """An event as the API shows it."""
    return {
        "kind": row.kind,
        "member": row.member,
        "merchant": row.merchant,
        "details": row.details,
        "at": row.at,
    }


def page(session: Session, number: int, size: int) -> Page:
    """One console page (1-based) of the events, newest first."""
    number = max(1, number)
    rows = session.execute(
        query().order_by(fraud_events.c.id.desc()).limit(size + 1).offset((number - 1) * size)
    ).all()
    return Page(
        rows=[dict(row._mapping) for row in rows[:size]],
        has_previous=number > 1,
        has_next=len(rows) > size,
    )


# Alerts ----------------------------------------------------------------------------------------


def alerts(
    state: str | None = None, kind: str | None = None, merchant: str | None = None
) -> Select[Any]:
    """The report's alerts, filtered by state, kind and merchant (`mer_` id)."""
    query = select(
        fraud_alerts.c.id,
        fraud_alerts.c.public_id,
        fraud_alerts.c.kind,
        fraud_alerts.c.business_date,
        fraud_alerts.c.evidence,
        fraud_alerts.c.state,
        fraud_alerts.c.reason,
        fraud_alerts.c.decided_by,
        fraud_alerts.c.decided_at,
        fraud_alerts.c.created_at,
        members.c.public_id.label("member"),
        merchants.c.public_id.label("merchant"),
        merchants.c.name.label("merchant_name"),
    ).select_from(
        fraud_alerts.outerjoin(members, members.c.id == fraud_alerts.c.member_id).outerjoin(
            merchants, merchants.c.id == fraud_alerts.c.merchant_id
        )
    )
    if state is not None:
        query = query.where(fraud_alerts.c.state == state)
    if kind is not None:
        query = query.where(fraud_alerts.c.kind == kind)
    if merchant is not None:
        query = query.where(merchants.c.public_id == merchant)
    return query


def alert_view(row: Any) -> dict[str, Any]:
    """An alert as the API shows it."""
    return {
        "id": row.public_id,
        "kind": row.kind,
        "business_date": row.business_date,
        "state": row.state,
        "merchant": row.merchant,
        "member": row.member,
        "evidence": row.evidence,
        "reason": row.reason,
        "decided_by": row.decided_by,
        "decided_at": row.decided_at,
        "created_at": row.created_at,
    }


def alert(session: Session, alert_id: str) -> dict[str, Any]:
    row = session.execute(alerts().where(fraud_alerts.c.public_id == alert_id)).one_or_none()
    if row is None:
        raise NotFound("no such fraud alert")
    return alert_view(row)


def alert_page(session: Session, state: str, number: int, size: int) -> Page:
    """One console page (1-based) of the alerts in `state`, newest first."""
    number = max(1, number)
    rows = session.execute(
        alerts(state=state)
        .order_by(fraud_alerts.c.id.desc())
        .limit(size + 1)
        .offset((number - 1) * size)
    ).all()
    return Page(
        rows=[dict(row._mapping) for row in rows[:size]],
        has_previous=number > 1,
        has_next=len(rows) > size,
    )


def alert_counts(session: Session) -> dict[str, int]:
    """How many alerts are in each state."""
    found: dict[str, int] = dict(
        session.execute(
            select(fraud_alerts.c.state, func.count()).group_by(fraud_alerts.c.state)
        ).all()
    )
    return {state: int(found.get(state, 0)) for state in ALERT_STATES}
