"""Idempotency keys (SPEC 3.1), with Stripe's semantics, kept in the database in the same
transaction as the effect they guard:

- a new key runs the operation and stores its result (success or refusal) with the key;
- the same key with the same request replays that stored result;
- the same key with a different request is `409 idempotency_conflict`;
- concurrent requests with one key: the unique index makes the second wait for the first to
  commit, then replay it, so there is one effect.

A key lives in its scope (a tenant), so two tenants never collide."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Index, Integer, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from coalition.database import BigId, Json, UTCDateTime, insert_unless_present, table
from coalition.errors import CoalitionError, IdempotencyConflict, InvalidRequest
from coalition.extensions import Base

# SPEC 3.1: keys live at least 24 hours.
KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("uq_idempotency_keys_scope_key", "scope", "key", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


keys = table(IdempotencyKey)


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict[str, Any]
    replayed: bool


def fingerprint(*parts: Any) -> str:
    """A stable digest of what a request asks for (method, path, body...)."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _insert_if_new(session: Session, row: dict[str, Any]) -> bool:
    statement = (
        insert_unless_present(session, keys, ["scope", "key"]).values(**row).returning(keys.c.id)
    )
    return session.execute(statement).scalar_one_or_none() is not None


def execute(
    session: Session,
    *,
    scope: str,
    key: str,
    request_fingerprint: str,
    operation: Callable[[], tuple[int, dict[str, Any]]],
    now: datetime,
) -> Outcome:
    """Run `operation` once for (scope, key). `operation` returns (status, body) or raises a
    CoalitionError, whose problem is stored and replayed like a success."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
    row = {"scope": scope, "key": key, "fingerprint": request_fingerprint, "created_at": now}
    if not _insert_if_new(session, row):
        stored = session.execute(
            select(keys.c.fingerprint, keys.c.status, keys.c.response).where(
                keys.c.scope == scope, keys.c.key == key
            )
        ).one()
        if stored.fingerprint != request_fingerprint:
            raise IdempotencyConflict(
                "this Idempotency-Key was used with a different request; use a new key"
            )
        return Outcome(stored.status, stored.response, replayed=True)

    savepoint = session.begin_nested()
    try:
        status, body = operation()
        savepoint.commit()
    except CoalitionError as refusal:
        savepoint.rollback()
        status, body = refusal.status, refusal.problem()
        if status == 429:
            # "Not now" is no answer to the request: its retry, under the same key, runs anew.
            session.execute(delete(keys).where(keys.c.scope == scope, keys.c.key == key))
            return Outcome(status, body, replayed=False)
    session.execute(
        update(keys)
        .where(keys.c.scope == scope, keys.c.key == key)
        .values(status=status, response=body)
    )
    return Outcome(status, body, replayed=False)


def purge(session: Session, now: datetime) -> int:
    """Forget keys past their lifetime; returns how many."""
    result = session.execute(delete(keys).where(keys.c.created_at < now - KEY_LIFETIME))
    return int(getattr(result, "rowcount", 0) or 0)
