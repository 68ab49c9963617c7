"""The operator's economics (SPEC 3.5 over SPEC 2's table): `GET /ops/economics` shows the terms
in force on a day, every version of the coalition's terms and the merchants' overrides;
`PUT /ops/economics` writes a version that takes effect on a business day that has not begun.
The rules of a change live in `coalition.economics.change`; the version rows, with who wrote
them and when, are the trail of every change."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import clock, economics
from coalition.database import table
from coalition.errors import CoalitionError, InvalidRequest, NotFound
from coalition.extensions import db
from coalition.web.access import principal, require
from coalition.web.api import blueprint
from merchants import services as merchant_services
from merchants.models import Merchant
from settlement import schemas

bp = blueprint("economics", __name__, "The coalition's economics, versioned by business day")
merchants = table(Merchant)
# How many merchants a refusal names in its detail, and in its errors (TIGER_STYLE: bounded).
NAMED_IN_DETAIL, NAMED_IN_ERRORS = 10, 100


def _zone() -> str:
    return str(current_app.config["COALITION_TIMEZONE"])


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


@bp.route("/ops/economics", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.arguments(schemas.EconomicsArgs, location="query")
@bp.response(200, schemas.EconomicsOut)
@bp.alt_response(404, description="No such merchant (`not_found`).")
def get_economics(args: dict[str, Any]) -> Any:
    """The terms in force today (or on `date`; a merchant's own, with `merchant`) and the day
    they took effect, every version of the coalition's terms, past and scheduled, and the
    merchants' overrides."""
    session = db.session()
    day: date = args.get("date") or clock.business_date(clock.utcnow(), _zone())
    only = None
    if "merchant" in args:
        only = (_merchant_id(session, args["merchant"], in_body=False), args["merchant"])
    terms, since = economics.in_force(session, day, only[0] if only else None)
    body = {
        "current": terms.to_json(),
        "effective_from": since,
        "versions": [_version(row) for row in economics.schedule(session)],
        "overrides": _overrides(session, only),
    }
    if only is not None:
        body["merchant"] = only[1]
    return body


@bp.route("/ops/economics", methods=["PUT"])
@require("operator", kinds=("operator",))
@bp.arguments(schemas.EconomicsIn)
@bp.response(200, schemas.EconomicsChangeOut)
def put_economics(change: dict[str, Any]) -> Any:
    """A new version of the terms from `effective_from`, a business day that has not begun: the
    coalition's whole set of settings, or with `merchant` some of that merchant's issuer-side
    settings. A version already scheduled for that day is replaced."""
    session = db.session()
    merchant_id = (
        _merchant_id(session, change["merchant"], in_body=True) if "merchant" in change else None
    )
    effective_from = change["effective_from"]
    savepoint = session.begin_nested()
    try:
        economics.change(
            session,
            effective_from=effective_from,
            settings=change["terms"],
            merchant_id=merchant_id,
            actor_id=principal().client_id,
            now=clock.utcnow(),
            zone=_zone(),
        )
        _check_base_rates(session, effective_from, merchant_id)
    except CoalitionError:
        savepoint.rollback()
        raise
    savepoint.commit()
    session.commit()
    versions = economics.schedule(session, merchant_id)
    written = next(row for row in versions if row.effective_from == effective_from)
    version = _version(written)
    if merchant_id is not None:
        version["merchant"] = change["merchant"]
    return {"version": version, "versions": [_version(row) for row in versions]}


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
