"""Settlement runs over the API (SPEC 3.5): the operator asks for a business day to be settled
(the run is done by a job) and reads the runs, each with its positions and flows."""

from __future__ import annotations

from typing import Any

from coalition import clock
from coalition.extensions import db
from coalition.jobs import enqueue
from coalition.web.access import operator_actor, require
from coalition.web.api import page_schema, paginate
from settlement import reads, schemas, tasks
from settlement import runs as settlement_runs
from settlement.api import bp


def _run(row: Any) -> dict[str, Any]:
    return {
        "id": row.public_id,
        "business_date": row.business_date,
        "kind": row.kind,
        "status": row.status,
        "window": {"start": row.window_start.isoformat(), "end": row.window_end.isoformat()},
        "currency": row.currency,
        "funding_model": row.funding_model,
        "totals": row.totals,
        "error": row.error,
        "created_at": row.created_at,
        "finished_at": row.finished_at,
    }


@bp.route("/ops/settlement-runs", methods=["POST"])
@require("operator", kinds=("operator",))
@bp.arguments(schemas.RunIn)
@bp.response(202, schemas.RunOut)
def request_run(body: dict[str, Any]) -> Any:
    """Settle a business day. A closed day's final run is made once: asking again returns it.
    A day still open gets a provisional run that reports and moves nothing. The run is done by
    a job; poll the run for its status."""
    session = db.session()
    run = settlement_runs.request_run(
        session, body["business_date"], clock.utcnow(), actor=operator_actor()
    )
    if run.status != "succeeded":
        enqueue(tasks.run_settlement, run.public_id, queue="settlement")
        run = settlement_runs.run_by_public_id(db.session(), run.public_id)
    return _run(run)


@bp.route("/ops/settlement-runs", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.arguments(schemas.RunListArgs, location="query")
@bp.response(200, page_schema(schemas.RunOut, "SettlementRunPage"))
def list_runs(args: dict[str, Any]) -> Any:
    """Settlement runs, newest first; `business_date` and `kind` filter."""
    query = reads.runs_query(db.session(), args.get("business_date"), args.get("kind"))
    return paginate(query, reads.runs.c.id, args, _run)


@bp.route("/ops/settlement-runs/<run_id>", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.response(200, schemas.RunDetailOut)
def get_run(run_id: str) -> Any:
    """A run with each merchant's position and the issuer x redeemer flows of its day."""
    session = db.session()
    run = settlement_runs.run_by_public_id(session, run_id)
    detail = reads.run_detail(session, run)
    party = detail.parties
    body = _run(run)
    body["positions"] = [
        {
            "merchant": party[p.merchant_id],
            **{
                key: getattr(p, key)
                for key in ("issued", "confirmed", "redeemed", "expired", "clawed_back", "reversed")
            },
            **{key: getattr(p, key) for key in ("owed", "receivable", "net")},
            "currency": run.currency,
            "components": p.components,
        }
        for p in detail.positions
    ]
    body["flows"] = [
        {
            "issuer": party[f.issuer_merchant_id],
            "redeemer": party[f.redeemer_merchant_id],
            "points": f.points,
            "amount": f.amount,
            "currency": run.currency,
        }
        for f in detail.flows
    ]
    return body
