"""Insights over the API (SPEC 3.3, 3.5): `GET /insights` (a merchant's token, scope
`transactions:read`) and `GET /ops/insights` (an operator's token). Thin: the window from the
query, the figures from `insights.reads`, serialised by `insights.schemas`."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE

from coalition import clock
from coalition.extensions import db
from coalition.web.access import principal, require
from coalition.web.api import blueprint
from insights import reads, schemas, services, zone

bp = blueprint("insights", __name__, "Insights: what the programme does for a partner")

OPERATOR = ("operator",)


@bp.route("/insights", methods=["GET"])
@require("transactions:read")
@bp.arguments(schemas.InsightsArgs, location="query", unknown=RAISE)
@bp.response(200, schemas.InsightsOut)
@bp.alt_response(422, description="`from` after `to`, or more than 24 months (`validation_error`).")
def merchant_insights(args: dict[str, Any]) -> Any:
    """What the programme does for this merchant in a range of business dates (default: the
    last 12 calendar months): members won through the coalition, the repeat-purchase rate,
    cohort retention, the share of sales from the top 20 % of customers and its curve, the
    average basket, points issued and redeemed, and the net position by month. Each figure's
    definition is in its field's description."""
    merchant_id = principal().merchant_id
    if merchant_id is None:  # `require` lets only merchant and member tokens in
        raise AssertionError("an insights route ran without a merchant")
    session, where = db.session(), zone.name()
    span = reads.window(
        args.get("from_"), args.get("to"), clock.business_date(clock.utcnow(), where), where
    )
    return reads.figures(session, merchant_id, span, where)


@bp.route("/ops/insights", methods=["GET"])
@require("operator", kinds=OPERATOR)
@bp.arguments(schemas.OpsInsightsArgs, location="query", unknown=RAISE)
@bp.response(200, schemas.OpsInsightsOut)
@bp.alt_response(404, description="`merchant` names no merchant.")
@bp.alt_response(422, description="`from` after `to`, or more than 24 months (`validation_error`).")
def operator_insights(args: dict[str, Any]) -> Any:
    """The coalition's insights in a range (the same figures as a merchant's, over every
    partner), one partner's when `merchant` names it, the liability now, breakage in the range
    and to date, and each partner's balance of trade in the range. Without `from` and `to`, the
    range is the 12 calendar months to yesterday, answered from the nightly snapshot once the
    night's jobs have run (`as_of` says when)."""
    session, where, now = db.session(), zone.name(), clock.utcnow()
    today = clock.business_date(now, where)
    if args.get("from_") is None and args.get("to") is None:
        span = services.operator_default(today, where)  # the nightly snapshot's (decision 342)
    else:
        span = reads.window(args.get("from_"), args.get("to"), today, where)
    return reads.operator_view(session, span, where, args.get("merchant"), now)
