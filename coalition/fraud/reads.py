"""The operator's view of fraud events, newest first: a console page at a time, or the API's
cursor pages. Members and merchants are named by their public ids (and the merchant by name)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, column, select
from sqlalchemy import table as core_table
from sqlalchemy.orm import Session

from coalition.fraud.models import FRAUD_KINDS, fraud_events

# Named rather than imported: the core does not import `merchants`, and members build on it.
members = core_table("members", column("id"), column("public_id"))
merchants = core_table("merchants", column("id"), column("public_id"), column("name"))

KINDS = FRAUD_KINDS


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
