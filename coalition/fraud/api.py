"""The operator's fraud events and the nightly report's alerts over the API (SPEC 3.5, 3.10):
alerts are listed, filtered and decided (dismissed with a reason, or confirmed), each decision
in the audit log."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from coalition import clock
from coalition.extensions import db
from coalition.fraud import reads, services
from coalition.web.access import operator_actor, require
from coalition.web.api import (
    PageArgs,
    Strict,
    blueprint,
    idempotent,
    page_schema,
    paginate,
    pattern,
)
from coalition.web.fields import text

bp = blueprint("fraud", __name__, "Fraud: the nightly report's alerts and the events it reads")


class FraudEventOut(Schema):
    kind = fields.String(
        metadata={
            "description": f"One of {', '.join(reads.KINDS)}: a spending refused by a limit, or"
            " a wrong redemption code (`code_lockout`: the one that locked the member out)."
        }
    )
    member = fields.String(allow_none=True, metadata={"description": "The member's `mbr_` id."})
    merchant = fields.String(allow_none=True, metadata={"description": "Where: `mer_` id."})
    details = fields.Dict(
        metadata={
            "description": "The figures: `limit_points`, `window_hours`, `spent_points` (in the"
            " window before), `asked_points`; for a wrong code, `locked`."
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


class FraudAlertArgs(PageArgs):
    state = fields.String(validate=validate.OneOf(reads.STATES))
    kind = fields.String(validate=validate.OneOf(reads.ALERT_KIND_NAMES))
    merchant = fields.String(
        validate=[
            validate.Length(min=1, max=60),
            pattern("^mer_[A-Za-z0-9]+$", "a merchant's `mer_` id"),
        ],
        metadata={"description": "A merchant's `mer_` id."},
    )


class FraudAlertOut(Schema):
    id = fields.String(metadata={"description": "The alert's `fra_` id."})
    kind = fields.String(
        metadata={
            "description": f"One of {', '.join(reads.ALERT_KIND_NAMES)}: what the report found"
            " (docs/fraud.md says each kind's rule)."
        }
    )
    business_date = fields.Date(metadata={"description": "The business day the report judged."})
    state = fields.String(metadata={"description": f"One of {', '.join(reads.STATES)}."})
    merchant = fields.String(allow_none=True, metadata={"description": "Whom: `mer_` id."})
    member = fields.String(allow_none=True, metadata={"description": "Whom: `mbr_` id."})
    evidence = fields.Dict(
        metadata={
            "description": "The figures, the transactions and members involved, and the"
            " `thresholds` the rule used."
        }
    )
    reason = fields.String(allow_none=True, metadata={"description": "Why it was dismissed."})
    decided_by = fields.String(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class DismissIn(Strict):
    reason = text(services.MAX_REASON, required=True)


@bp.route("/ops/fraud-alerts", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.arguments(FraudAlertArgs, location="query")
@bp.response(200, page_schema(FraudAlertOut, "FraudAlertPage"))
def list_fraud_alerts(args: dict[str, Any]) -> Any:
    """The nightly fraud report's alerts, newest first, cursor-paginated; `state`, `kind` and
    `merchant` filter."""
    query = reads.alerts(args.get("state"), args.get("kind"), args.get("merchant"))
    return paginate(query, reads.fraud_alerts.c.id, args, reads.alert_view)


@bp.route("/ops/fraud-alerts/<alert_id>/dismiss", methods=["POST"])
@require("operator", kinds=("operator",))
@bp.arguments(DismissIn)
@bp.response(200, FraudAlertOut)
@bp.alt_response(409, description="Dismissed or confirmed already (`alert_decided`).")
def dismiss_fraud_alert(body: dict[str, Any], alert_id: str) -> Any:
    """Dismiss an open alert: no fraud, for the reason given (required, audited)."""
    session, now = db.session(), clock.utcnow()
    return idempotent(
        lambda: (
            200,
            FraudAlertOut().dump(
                services.dismiss(session, alert_id, body["reason"], operator_actor(), now)
            ),
        )
    )


@bp.route("/ops/fraud-alerts/<alert_id>/confirm", methods=["POST"])
@require("operator", kinds=("operator",))
@bp.response(200, FraudAlertOut)
@bp.alt_response(409, description="Dismissed or confirmed already (`alert_decided`).")
def confirm_fraud_alert(alert_id: str) -> Any:
    """Confirm an open alert: the operator judges it fraud (audited)."""
    session, now = db.session(), clock.utcnow()
    return idempotent(
        lambda: (
            200,
            FraudAlertOut().dump(services.confirm(session, alert_id, operator_actor(), now)),
        )
    )
