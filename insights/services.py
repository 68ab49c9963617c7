"""The nightly precomputation of the operator's coalition-wide insights (decision 342): the
default range of the operator's view (the 12 calendar months to the day just closed), kept as
one snapshot row that replaces the last one."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from coalition import tenancy
from insights import reads


def operator_default(today: date, zone: str) -> reads.Window:
    """The operator's default range: the 12 calendar months to yesterday, the last day the
    nightly jobs closed (so that the snapshot answers it)."""
    yesterday = date.fromordinal(today.toordinal() - 1)
    return reads.window(None, yesterday, yesterday, zone)


def precompute(session: Session, day: date, now: datetime, zone: str) -> reads.Window:
    """Compute and keep the snapshot of the range that ends with business day `day`."""
    span = reads.window(None, day, day, zone)
    part = reads.coalition_part(session, span, zone)
    with tenancy.acting_as(tenancy.SYSTEM, session):
        session.execute(delete(reads.snapshots).where(reads.snapshots.c.scope == reads.COALITION))
        session.execute(
            insert(reads.snapshots).values(
                scope=reads.COALITION,
                first=span.first,
                last=span.last,
                figures=part,
                computed_at=now,
            )
        )
    return span
