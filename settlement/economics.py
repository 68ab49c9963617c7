"""The operator's economics (SPEC 2, SPEC 3.5), as settlement reads and writes them: the terms in
force on a day with every version and the merchants' overrides, and a new version, written by
`coalition.economics.change` and refused if it would put any merchant's base rate outside the
earn-rate bounds it trades under. The version rows, with who wrote them and when, are the trail
of every change."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import audit, economics
from coalition.database import table
from coalition.errors import CoalitionError, InvalidRequest, NotFound
from merchants import services as merchant_services
from merchants.models import Merchant
from settlement import business_days

merchants = table(Merchant)
# How many merchants a refusal names in its detail, and in its errors (TIGER_STYLE: bounded).
NAMED_IN_DETAIL, NAMED_IN_ERRORS = 10, 100


def read(session: Session, day: date | None, merchant: str | None, now: datetime) -> dict[str, Any]:
    """The terms in force on `day` (default today; a merchant's own, given its public id) and
    the day they took effect, every version of the coalition's terms and the merchants'
    overrides (only that merchant's, given one). An unknown merchant is not found."""
    only = None
    if merchant is not None:
        only = (_merchant_id(session, merchant, in_body=False), merchant)
    terms, since = economics.in_force(
        session, day or business_days.today(now), only[0] if only else None
    )
    found = {
        "current": terms.to_json(),
        "effective_from": since,
        "versions": [_version(row) for row in economics.schedule(session)],
        "overrides": _overrides(session, only),
    }
    if only is not None:
        found["merchant"] = merchant
    return found


def set_economics(
    session: Session,
    *,
    effective_from: date,
    settings: dict[str, Any],
    merchant: str | None,
    actor_id: str | None,
    now: datetime,
    actor: audit.Actor | None = None,
) -> dict[str, Any]:
    """Write a version of the terms from `effective_from` (the coalition's, or with `merchant`,
    a public id, that merchant's overrides), replacing one already scheduled for that day, and
    commit. Refuses (writing nothing) what `coalition.economics.change` refuses, an unknown
    merchant, and bounds that would exclude a merchant's base rate (SPEC 2). Returns the
    version written and the versions of its scope."""
    merchant_id = _merchant_id(session, merchant, in_body=True) if merchant is not None else None
    before = _scheduled_or_in_force(session, effective_from, merchant_id)
    savepoint = session.begin_nested()
    try:
        economics.change(
            session,
            effective_from=effective_from,
            settings=settings,
            merchant_id=merchant_id,
            actor_id=actor_id,
            now=now,
            zone=business_days.zone(),
        )
        _check_base_rates(session, effective_from, merchant_id)
        if actor is not None:
            audit.record(
                session,
                actor,
                "economics.schedule",
                "economics",
                merchant or "coalition",
                before=before,
                after={"effective_from": effective_from, "terms": settings},
                now=now,
            )
    except CoalitionError:
        savepoint.rollback()
        raise
    savepoint.commit()
    session.commit()
    versions = economics.schedule(session, merchant_id)
    written = _version(next(row for row in versions if row.effective_from == effective_from))
    if merchant is not None:
        written["merchant"] = merchant
    return {"version": written, "versions": [_version(row) for row in versions]}


def _scheduled_or_in_force(
    session: Session, day: date, merchant_id: int | None
) -> dict[str, Any] | None:
    """What a new version for `day` changes: the version already scheduled for that day (which
    it replaces), or else the coalition's terms in force then (for a merchant's overrides, its
    overrides then, if any)."""
    for row in economics.schedule(session, merchant_id):
        if row.effective_from == day:
            return {"effective_from": row.effective_from, "terms": row.terms}
    if merchant_id is not None:
        return None
    terms, since = economics.in_force(session, day, None)
    return {"effective_from": since, "terms": terms.to_json()}


def _merchant_id(session: Session, public_id: str, *, in_body: bool) -> int:
    found = session.execute(
        select(merchants.c.id).where(merchants.c.public_id == public_id)
    ).scalar()
    if found is None:
        if in_body:
            raise InvalidRequest("no such merchant", errors={"merchant": ["no such merchant"]})
        raise NotFound("no such merchant")
    return int(found)


def _version(row: Any) -> dict[str, Any]:
    return {
        "effective_from": row.effective_from,
        "terms": row.terms,
        "created_at": row.created_at,
        "actor": row.actor_id,
    }


def _overrides(session: Session, only: tuple[int, str] | None) -> list[dict[str, Any]]:
    """Each merchant's versions of its overrides (only one merchant's, given `only`), by id."""
    if only is not None:
        found = [only]
    else:
        ids = economics.overridden_merchants(session)
        rows = session.execute(
            select(merchants.c.id, merchants.c.public_id).where(merchants.c.id.in_(ids))
        ).all()
        found = sorted(((row.id, row.public_id) for row in rows), key=lambda pair: pair[1])
    overrides = []
    for merchant_id, public_id in found:
        versions = [_version(row) for row in economics.schedule(session, merchant_id)]
        if versions:
            overrides.append({"merchant": public_id, "versions": versions})
    return overrides


def _check_base_rates(session: Session, effective_from: date, merchant_id: int | None) -> None:
    """SPEC 2: every merchant's base rate stays within the earn-rate bounds it trades under."""
    outside = merchant_services.base_rates_outside_bounds(session, effective_from, merchant_id)
    if outside:
        named = sorted(outside)
        shown = ", ".join(named[:NAMED_IN_DETAIL]) + (
            " ..." if len(named) > NAMED_IN_DETAIL else ""
        )
        raise InvalidRequest(
            f"the earn-rate bounds would exclude the base rate of {len(named)} merchant(s):"
            f" {shown}; change their base rates or give them bounds of their own first",
            errors={
                "terms": {
                    "earn_rate_bounds": [
                        f"excludes the base rate of {public_id} (bounds {low} to {high})"
                        for public_id, (low, high) in sorted(outside.items())[:NAMED_IN_ERRORS]
                    ]
                }
            },
        )
