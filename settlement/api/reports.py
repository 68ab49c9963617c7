"""Settlement's reports over the API (SPEC 3.5), for the operator: a month's flow report and
the liability of the points outstanding now."""

from __future__ import annotations

from typing import Any

from coalition import clock, economics
from coalition.extensions import db
from coalition.web.access import require
from settlement import business_days, reports, schemas
from settlement.api import bp


@bp.route("/ops/reports/flows", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.arguments(schemas.FlowArgs, location="query")
@bp.response(200)
def flow_report(args: dict[str, Any]) -> Any:
    """The month's issuer x redeemer matrix in points and money: what the merchants would owe one
    another without the operator (multilateral netting replaces it with one net each)."""
    return reports.flows(db.session(), args["month"])


@bp.route("/ops/liability", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.response(200)
def liability() -> Any:
    """Points outstanding now, their value, debts, and breakage (expired points) to date."""
    today = business_days.today(clock.utcnow())
    return reports.liability(db.session(), economics.coalition_terms(db.session(), today))
