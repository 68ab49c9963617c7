"""The operator's list of fraud events over the API (SPEC 3.5, 3.10)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields

from coalition.fraud import reads
from coalition.web.access import require
from coalition.web.api import PageArgs, blueprint, page_schema, paginate

bp = blueprint("fraud", __name__, "Fraud: the events the fraud report reads")


class FraudEventOut(Schema):
    kind = fields.String(
        metadata={"description": f"One of {', '.join(reads.KINDS)}: a spending refused by a limit."}
    )
    member = fields.String(allow_none=True, metadata={"description": "The member's `mbr_` id."})
    merchant = fields.String(allow_none=True, metadata={"description": "Where: `mer_` id."})
    details = fields.Dict(
        metadata={
            "description": "The figures: `limit_points`, `window_hours`, `spent_points` (in the"
            " window before), `asked_points`."
        }
    )
    at = fields.DateTime()


@bp.route("/ops/fraud-events", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.arguments(PageArgs, location="query")
@bp.response(200, page_schema(FraudEventOut, "FraudEventPage"))
def list_fraud_events(args: dict[str, Any]) -> Any:
    """Every fraud event, newest first, cursor-paginated: spendings refused by a velocity
    limit, each with its member, merchant and figures."""
    return paginate(reads.query(), reads.fraud_events.c.id, args, reads.view)
