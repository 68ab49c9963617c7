"""The operator's economics over the API (SPEC 3.5 over SPEC 2's table): `GET /ops/economics`
shows the terms in force on a day, every version of the coalition's terms and the merchants'
overrides; `PUT /ops/economics` writes a version that takes effect on a business day that has
not begun. The rules of a change live in `settlement.economics.set_economics` and
`coalition.economics.change`."""

from __future__ import annotations

from typing import Any

from coalition import clock
from coalition.extensions import db
from coalition.web.access import operator_actor, principal, require
from coalition.web.api import blueprint
from settlement import economics, schemas

bp = blueprint("economics", __name__, "The coalition's economics, versioned by business day")


@bp.route("/ops/economics", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.arguments(schemas.EconomicsArgs, location="query")
@bp.response(200, schemas.EconomicsOut)
@bp.alt_response(404, description="No such merchant (`not_found`).")
def get_economics(args: dict[str, Any]) -> Any:
    """The terms in force today (or on `date`; a merchant's own, with `merchant`) and the day
    they took effect, every version of the coalition's terms, past and scheduled, and the
    merchants' overrides."""
    return economics.read(db.session(), args.get("date"), args.get("merchant"), clock.utcnow())


@bp.route("/ops/economics", methods=["PUT"])
@require("operator", kinds=("operator",))
@bp.arguments(schemas.EconomicsIn)
@bp.response(200, schemas.EconomicsChangeOut)
def put_economics(change: dict[str, Any]) -> Any:
    """A new version of the terms from `effective_from`, a business day that has not begun: the
    coalition's whole set of settings, or with `merchant` some of that merchant's issuer-side
    settings. A version already scheduled for that day is replaced."""
    return economics.set_economics(
        db.session(),
        effective_from=change["effective_from"],
        settings=change["terms"],
        merchant=change.get("merchant"),
        actor_id=principal().client_id,
        now=clock.utcnow(),
        actor=operator_actor(),
    )
