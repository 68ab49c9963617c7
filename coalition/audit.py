"""The audit log (SPEC 3.9): every staff action in the console and every operator API call that
changes something, with who did it, when, what, and the changed object's relevant fields before
and after.

`record` is called by the service that makes the change, in the same transaction, so an event
exists exactly when its change does. The caller names the actor with `Actor.staff` or
`Actor.operator_client`; services take it as a plain value and never know HTTP. `events` reads
the log newest first, filtered and a page at a time. Only the operator's and the system's
tenants see the table (row-level security)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import CheckConstraint, Index, String, insert, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from coalition import clock
from coalition.database import BigId, Json, UTCDateTime, table
from coalition.extensions import Base

ACTOR_KINDS: Final = ("staff", "operator_client")
PAGE_SIZE: Final = 25
MAX_LABEL: Final = 320


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint("actor_kind IN ('staff', 'operator_client')", name="actor_kind"),
        Index("ix_audit_events_target", "target_type", "target_id"),
        Index("ix_audit_events_actor", "actor_kind", "actor_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor_kind: Mapped[str] = mapped_column(String(16))
    # A staff account's id, or an operator client's `client_id`; the label is its email or name
    # as it was then.
    actor_id: Mapped[str] = mapped_column(String(80))
    actor_label: Mapped[str] = mapped_column(String(MAX_LABEL))
    action: Mapped[str] = mapped_column(String(80), index=True)
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str] = mapped_column(String(80))
    before: Mapped[dict[str, Any] | None] = mapped_column(Json)
    after: Mapped[dict[str, Any] | None] = mapped_column(Json)


events_table = table(AuditEvent)


@dataclass(frozen=True)
class Actor:
    """Who made a change: a staff account (`kind` "staff") or an operator's OAuth client."""

    kind: str
    id: str
    label: str

    @classmethod
    def staff(cls, staff_id: int, email: str) -> Actor:
        return cls("staff", str(staff_id), email)

    @classmethod
    def operator_client(cls, client_id: str, name: str | None = None) -> Actor:
        return cls("operator_client", client_id, name or client_id)


def _plain(value: Any) -> Any:
    """`value` as JSON keeps it: decimals and dates as text, never floats."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def record(
    session: Session,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str | int,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Write one event in the session's transaction (the caller commits it with the change)."""
    if actor.kind not in ACTOR_KINDS:
        raise ValueError(f"unknown actor kind {actor.kind!r}")
    session.execute(
        insert(events_table).values(
            at=now or clock.utcnow(),
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_label=actor.label[:MAX_LABEL],
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            before=None if before is None else _plain(before),
            after=None if after is None else _plain(after),
        )
    )


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    has_previous: bool
    has_next: bool


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def events(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: date | None = None,
    until: date | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> Page:
    """Events newest first, a page at a time (1-based). `actor` matches an actor's id or a part
    of its label (email, client name), in any letter case; `action` an action or, ending in a
    dot, a family of them ("merchant."); `target` a target's id (or "type:id"); `since` and
    `until` are UTC days, both included."""
    e = events_table
    query = select(e)
    if actor:
        query = query.where(
            or_(
                e.c.actor_id == actor,
                e.c.actor_label.ilike(f"%{_escape_like(actor)}%", escape="\\"),
            )
        )
    if action:
        if action.endswith("."):
            query = query.where(e.c.action.startswith(action, autoescape=True))
        else:
            query = query.where(e.c.action == action)
    if target:
        kind, _, ident = target.rpartition(":")
        query = query.where(e.c.target_id == ident)
        if kind:
            query = query.where(e.c.target_type == kind)
    if since is not None:
        query = query.where(e.c.at >= datetime.combine(since, time(), UTC))
    if until is not None:
        query = query.where(e.c.at < datetime.combine(until + timedelta(days=1), time(), UTC))
    page = max(1, page)
    rows = session.execute(
        query.order_by(e.c.id.desc()).limit(page_size + 1).offset((page - 1) * page_size)
    ).all()
    return Page(
        rows=[dict(row._mapping) for row in rows[:page_size]],
        has_previous=page > 1,
        has_next=len(rows) > page_size,
    )


def actions(session: Session, limit: int = 200) -> list[str]:
    """The actions the log holds, for a filter's choices."""
    return list(
        session.execute(
            select(events_table.c.action).distinct().order_by(events_table.c.action).limit(limit)
        ).scalars()
    )
