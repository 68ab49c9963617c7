"""Operations on segments: define (create, change, delete) a merchant's or the operator's
segment, count a definition live, and evaluate: write a segment's current members into
`segment_members` (and its `member_count`), at once when it is defined or changed, and for every
segment nightly (`evaluate-segments`). The only writer of `segments` and `segment_members`
(but for erasure, which forgets a member everywhere).

A merchant's segment draws on attributes and consents that its tenant may not read (row-level
security keeps a member's attributes its own and the operator's): evaluating acts as the system,
and the query names the merchant itself, so that it counts only that merchant's customers and
purchases (decision 306). The owner learns how many members, and a campaign reaches them; never
who they are or what they told."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from flask import current_app
from marshmallow import ValidationError
from sqlalchemy import column, delete, func, insert, literal, select, update
from sqlalchemy import table as core_table
from sqlalchemy.orm import Session

from coalition import audit, clock, economics, tenancy
from coalition.errors import InvalidRequest, NotFound
from coalition.ids import new_id
from coalition.segments import definitions, evaluation
from coalition.segments.models import segment_members, segments

# The coalition's directory, named rather than imported (the core does not import `merchants`).
merchants = core_table("merchants", column("id"), column("public_id"))

# Bounds (TIGER_STYLE): segments per owner, and the segments one nightly run evaluates.
MAX_SEGMENTS = 200
MAX_NIGHTLY = 100_000


@dataclass(frozen=True)
class Owner:
    """Whose segment: a merchant's (its internal id) or the operator's (None)."""

    merchant_id: int | None

    @property
    def operator(self) -> bool:
        return self.merchant_id is None


def _today(now: datetime) -> date:
    return clock.business_date(now, current_app.config["COALITION_TIMEZONE"])


def prepare(
    session: Session, owner: Owner, loaded: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """The stored form of a definition `DefinitionIn` loaded, for `owner`: a criterion the owner
    may not use, money in another currency or an unknown partner is `validation_error` (errors
    under `definition`)."""
    currency = economics.terms_at(now, session=session).currency
    try:
        definition = definitions.normalise(dict(loaded), operator=owner.operator, currency=currency)
    except ValidationError as refused:
        raise InvalidRequest(
            "invalid definition", errors={"definition": refused.messages}
        ) from refused
    wanted = definition.get("partners", {}).get("ids", [])
    if wanted:
        known = set(
            session.execute(
                select(merchants.c.public_id).where(merchants.c.public_id.in_(wanted))
            ).scalars()
        )
        unknown = [public_id for public_id in wanted if public_id not in known]
        if unknown:
            raise InvalidRequest(
                "unknown partners",
                errors={"definition": {"partners": {"ids": [f"unknown: {', '.join(unknown)}"]}}},
            )
    return definition


def _partner_ids(session: Session, definition: Mapping[str, Any]) -> list[int]:
    wanted = definition.get("partners", {}).get("ids", [])
    if not wanted:
        return []
    found: dict[str, int] = {
        row.public_id: row.id
        for row in session.execute(
            select(merchants.c.public_id, merchants.c.id).where(merchants.c.public_id.in_(wanted))
        )
    }
    return [found[public_id] for public_id in wanted if public_id in found]


def query(session: Session, owner: Owner, definition: Mapping[str, Any], now: datetime) -> Any:
    """The members query of a stored definition (`evaluation.members_query`)."""
    return evaluation.members_query(
        definition,
        merchant_id=owner.merchant_id,
        partner_ids=_partner_ids(session, definition),
        now=now,
        today=_today(now),
    )


def count(session: Session, owner: Owner, definition: Mapping[str, Any], now: datetime) -> int:
    """How many members a stored definition holds now, without saving anything."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        found = query(session, owner, definition, now).subquery()
        return int(session.execute(select(func.count()).select_from(found)).scalar_one())


def _owned(session: Session, owner: Owner, public_id: str) -> Any:
    """The owner's live segment (locked), or not_found: another owner's is as unknown."""
    mine = (
        segments.c.merchant_id.is_(None)
        if owner.operator
        else segments.c.merchant_id == owner.merchant_id
    )
    row = session.execute(
        select(segments.c.id, segments.c.public_id, segments.c.name, segments.c.definition)
        .where(segments.c.public_id == public_id, mine, segments.c.deleted_at.is_(None))
        .with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFound("no such segment")
    return row


def evaluate(
    session: Session, segment_id: int, owner: Owner, definition: Mapping[str, Any], now: datetime
) -> int:
    """Replace the segment's members with those its definition holds now; returns how many.
    Idempotent: the same moment gives the same rows."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        session.execute(delete(segment_members).where(segment_members.c.segment_id == segment_id))
        found = query(session, owner, definition, now).subquery()
        session.execute(
            insert(segment_members).from_select(
                ["segment_id", "member_id"],
                select(literal(segment_id), found.c.member_id),
            )
        )
        held = int(
            session.execute(
                select(func.count()).where(segment_members.c.segment_id == segment_id)
            ).scalar_one()
        )
        session.execute(
            update(segments)
            .where(segments.c.id == segment_id)
            .values(member_count=held, evaluated_at=now)
        )
    return held


def _audit(
    session: Session,
    actor: audit.Actor | None,
    action: str,
    public_id: str,
    now: datetime,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """The operator's changes are audited (its segments only: a merchant's are its own)."""
    if actor is not None:
        audit.record(
            session, actor, action, "segment", public_id, before=before, after=after, now=now
        )


def create(
    session: Session,
    owner: Owner,
    *,
    name: str,
    definition: Mapping[str, Any],
    now: datetime,
    actor: audit.Actor | None = None,
) -> str:
    """A new segment, evaluated at once; returns its public id. `definition` as `DefinitionIn`
    loaded it. An owner with MAX_SEGMENTS live segments is refused."""
    stored = prepare(session, owner, definition, now)
    mine = (
        segments.c.merchant_id.is_(None)
        if owner.operator
        else segments.c.merchant_id == owner.merchant_id
    )
    live = session.execute(
        select(func.count()).where(mine, segments.c.deleted_at.is_(None))
    ).scalar_one()
    if live >= MAX_SEGMENTS:
        raise InvalidRequest(
            f"at most {MAX_SEGMENTS} segments",
            errors={"name": [f"at most {MAX_SEGMENTS} segments"]},
        )
    public_id = new_id("seg")
    segment_id = session.execute(
        insert(segments)
        .values(
            public_id=public_id,
            merchant_id=owner.merchant_id,
            name=name,
            definition=stored,
            member_count=0,
            created_at=now,
            updated_at=now,
        )
        .returning(segments.c.id)
    ).scalar_one()
    held = evaluate(session, segment_id, owner, stored, now)
    _audit(
        session,
        actor,
        "segment.created",
        public_id,
        now,
        after={"name": name, "definition": stored, "member_count": held},
    )
    return public_id


def change(
    session: Session,
    owner: Owner,
    public_id: str,
    *,
    name: str,
    definition: Mapping[str, Any],
    now: datetime,
    actor: audit.Actor | None = None,
) -> None:
    """Replace a segment's name and definition, and evaluate it at once."""
    row = _owned(session, owner, public_id)
    stored = prepare(session, owner, definition, now)
    session.execute(
        update(segments)
        .where(segments.c.id == row.id)
        .values(name=name, definition=stored, updated_at=now)
    )
    held = evaluate(session, row.id, owner, stored, now)
    _audit(
        session,
        actor,
        "segment.updated",
        public_id,
        now,
        before={"name": row.name, "definition": row.definition},
        after={"name": name, "definition": stored, "member_count": held},
    )


def remove(
    session: Session,
    owner: Owner,
    public_id: str,
    *,
    now: datetime,
    actor: audit.Actor | None = None,
) -> None:
    """Delete a segment: it is gone from lists and its members are forgotten (a campaign that
    targeted it reaches nobody); the row stays, marked deleted, for what referred to it."""
    row = _owned(session, owner, public_id)
    with tenancy.acting_as(tenancy.SYSTEM, session):
        session.execute(delete(segment_members).where(segment_members.c.segment_id == row.id))
    session.execute(
        update(segments)
        .where(segments.c.id == row.id)
        .values(deleted_at=now, updated_at=now, member_count=0)
    )
    _audit(
        session,
        actor,
        "segment.deleted",
        public_id,
        now,
        before={"name": row.name, "definition": row.definition},
        after={"deleted_at": now},
    )


def evaluate_all(session: Session, now: datetime, commit: Any = None) -> int:
    """The nightly job: every live segment evaluated as of `now` (each in turn, `commit`ted
    after each when given); returns how many segments."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        rows: Sequence[Any] = session.execute(
            select(segments.c.id, segments.c.merchant_id, segments.c.definition)
            .where(segments.c.deleted_at.is_(None))
            .order_by(segments.c.id)
            .limit(MAX_NIGHTLY)
        ).all()
        for row in rows:
            evaluate(session, row.id, Owner(row.merchant_id), row.definition, now)
            if commit is not None:
                commit()
    return len(rows)


def forget_member(session: Session, member_id: int) -> None:
    """Erasure, or a withdrawn `profiling` consent: the member leaves every segment now, not at
    the next nightly evaluation (a campaign reads `segment_members`)."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        held = list(
            session.execute(
                delete(segment_members)
                .where(segment_members.c.member_id == member_id)
                .returning(segment_members.c.segment_id)
            ).scalars()
        )
        if held:
            session.execute(
                update(segments)
                .where(segments.c.id.in_(held))
                .values(member_count=segments.c.member_count - 1)
            )
