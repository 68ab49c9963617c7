"""Reads of segments: an owner's live segments (API cursor pages, console pages), one segment,
and a segment's members as last evaluated (what a campaign reaches). Every query names its
owner, whatever row-level security would also allow."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from coalition.errors import NotFound
from coalition.segments.models import segment_members, segments
from coalition.segments.services import Owner

MAX_PAGE = 500


def _mine(owner: Owner) -> ColumnElement[bool]:
    if owner.operator:
        return segments.c.merchant_id.is_(None)
    return segments.c.merchant_id == owner.merchant_id


def listed(owner: Owner) -> Select[Any]:
    """The owner's live segments (for `web.api.paginate`, on `segments.c.id`)."""
    return select(
        segments.c.id,
        segments.c.public_id,
        segments.c.name,
        segments.c.definition,
        segments.c.member_count,
        segments.c.evaluated_at,
        segments.c.created_at,
        segments.c.updated_at,
    ).where(_mine(owner), segments.c.deleted_at.is_(None))


def view(row: Any) -> dict[str, Any]:
    return {
        "id": row.public_id,
        "name": row.name,
        "definition": row.definition,
        "member_count": row.member_count,
        "evaluated_at": row.evaluated_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def segment(session: Session, owner: Owner, public_id: str) -> dict[str, Any]:
    """One of the owner's live segments; another owner's is not found."""
    row = session.execute(listed(owner).where(segments.c.public_id == public_id)).one_or_none()
    if row is None:
        raise NotFound("no such segment")
    return view(row)


def page(session: Session, owner: Owner, size: int = MAX_PAGE) -> list[dict[str, Any]]:
    """The owner's live segments, newest first (at most `size`: the console's list)."""
    rows = session.execute(listed(owner).order_by(segments.c.id.desc()).limit(size)).all()
    return [view(row) for row in rows]


def member_ids(session: Session, segment_id: int) -> Select[Any]:
    """The members (`member_id`) the segment held at its last evaluation (the campaigns'
    contract: this table is kept current on every change and nightly)."""
    del session  # a query to run, compose or count, in the caller's session
    return select(segment_members.c.member_id).where(segment_members.c.segment_id == segment_id)
