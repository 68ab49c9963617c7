"""The settlement API (SPEC 3.3, 3.5): the operator's runs, statements, flow report and liability;
a merchant's own statements, as JSON, CSV and PDF. Thin: validate, call a service, serialise."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from coalition import clock, economics
from coalition.database import table
from coalition.errors import NotFound
from coalition.extensions import db
from coalition.jobs import enqueue
from coalition.web.access import principal, require
from coalition.web.api import PageArgs, Strict, blueprint, page_schema, paginate
from coalition.web.fields import MoneySchema
from merchants.models import Merchant
from settlement import payments, renditions, reports, statements
from settlement import runs as settlement_runs
from settlement.models import SettlementFlow, SettlementPosition, SettlementRun
from settlement.money import OPERATOR

bp = blueprint("settlement", __name__, "Settlement runs, statements and reports")
runs = table(SettlementRun)
positions = table(SettlementPosition)
flows = table(SettlementFlow)
merchants = table(Merchant)
MONTH = validate.Regexp(statements.MONTH, error="a month: 2026-10")


class RunIn(Strict):
    business_date = fields.Date(required=True)


class RunListArgs(PageArgs):
    business_date = fields.Date()
    kind = fields.String(validate=validate.OneOf(("final", "provisional")))


class MonthIn(Strict):
    month = fields.String(required=True, validate=MONTH)


class MonthArgs(PageArgs):
    month = fields.String(validate=MONTH)


class FlowArgs(Schema):
    month = fields.String(required=True, validate=MONTH)


class RunOut(Schema):
    id = fields.String()
    business_date = fields.Date()
    kind = fields.String()
    status = fields.String()
    window = fields.Dict()
    currency = fields.String(allow_none=True)
    funding_model = fields.String(allow_none=True)
    totals = fields.Dict(allow_none=True)
    error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)


class RunDetailOut(RunOut):
    positions = fields.List(fields.Dict())
    flows = fields.List(fields.Dict())


class PartyOut(Schema):
    """A merchant by its id and name (or the operator: id `operator`)."""

    id = fields.String()
    name = fields.String()


class CarriedOut(Schema):
    statement = fields.String()
    month = fields.String()
    amount = fields.Nested(MoneySchema)


class StatementOut(Schema):
    """Exact amounts (`lines`, `exact_net`, `rounding`) are decimal strings in major units of
    `currency`; `opening`, `net` and `closing` are rounded to minor units, as money. `closing`
    positive: the merchant pays; `summary` says it in words."""

    id = fields.String()
    merchant = fields.Nested(PartyOut)
    month = fields.String()
    currency = fields.String()
    status = fields.String()
    issued_at = fields.String()
    summary = fields.String()
    opening = fields.Nested(MoneySchema)
    carried = fields.List(fields.Nested(CarriedOut))
    lines = fields.List(fields.Dict())
    exact_net = fields.String()
    rounding = fields.String()
    net = fields.Nested(MoneySchema)
    closing = fields.Nested(MoneySchema)
    days = fields.List(fields.Dict())
    payment = fields.Dict(allow_none=True)


class StatementListOut(Schema):
    data = fields.List(fields.Nested(StatementOut))


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


def _parties(ids: set[int | None]) -> dict[int | None, dict[str, str]]:
    """Each merchant id as `{"id", "name"}`; None, the operator."""
    found: dict[int | None, dict[str, str]] = {None: dict(OPERATOR)}
    known = [i for i in ids if i is not None]
    if known:
        rows = db.session.execute(
            select(merchants.c.id, merchants.c.public_id, merchants.c.name).where(
                merchants.c.id.in_(known)
            )
        )
        found.update({row.id: {"id": row.public_id, "name": row.name} for row in rows})
    return found


@bp.route("/ops/settlement-runs", methods=["POST"])
@require("operator", kinds=("operator",))
@bp.arguments(RunIn)
@bp.response(202, RunOut)
def request_run(body: dict[str, Any]) -> Any:
    """Settle a business day. A closed day's final run is made once: asking again returns it.
    A day still open gets a provisional run that reports and moves nothing. The run is done by
    a job; poll the run for its status."""
    session = db.session()
    run = settlement_runs.request_run(session, body["business_date"], clock.utcnow())
    if run.status != "succeeded":
        enqueue(settlement_runs.run_settlement, run.public_id, queue="settlement")
        run = settlement_runs.run_by_public_id(db.session(), run.public_id)
    return _run(run)


@bp.route("/ops/settlement-runs", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.arguments(RunListArgs, location="query")
@bp.response(200, page_schema(RunOut, "SettlementRunPage"))
def list_runs(args: dict[str, Any]) -> Any:
    """Settlement runs, newest first; `business_date` and `kind` filter."""
    query = select(runs)
    if args.get("business_date"):
        settlement_runs.check_day(db.session(), args["business_date"])
        query = query.where(runs.c.business_date == args["business_date"])
    if args.get("kind"):
        query = query.where(runs.c.kind == args["kind"])
    return paginate(query, runs.c.id, args, _run)


@bp.route("/ops/settlement-runs/<run_id>", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.response(200, RunDetailOut)
def get_run(run_id: str) -> Any:
    """A run with each merchant's position and the issuer x redeemer flows of its day."""
    session = db.session()
    run = settlement_runs.run_by_public_id(session, run_id)
    position_rows = session.execute(
        select(positions).where(positions.c.run_id == run.id).order_by(positions.c.merchant_id)
    ).all()
    flow_rows = session.execute(
        select(flows).where(flows.c.run_id == run.id).order_by(flows.c.id)
    ).all()
    party = _parties(
        {p.merchant_id for p in position_rows}
        | {f.issuer_merchant_id for f in flow_rows}
        | {f.redeemer_merchant_id for f in flow_rows}
    )
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
        for p in position_rows
    ]
    body["flows"] = [
        {
            "issuer": party[f.issuer_merchant_id],
            "redeemer": party[f.redeemer_merchant_id],
            "points": f.points,
            "amount": f.amount,
            "currency": run.currency,
        }
        for f in flow_rows
    ]
    return body


@bp.route("/ops/statements", methods=["POST"])
@require("operator", kinds=("operator",))
@bp.arguments(MonthIn)
@bp.response(201, StatementListOut)
@bp.alt_response(409, description="Days of the month are not settled (`days_not_settled`).")
def issue_statements(body: dict[str, Any]) -> Any:
    """State a month that has ended and whose days are all settled (`409 days_not_settled`
    names those that are not). Stating it again returns the same statements."""
    session = db.session()
    rows = statements.issue_month(session, body["month"], clock.utcnow())
    session.commit()
    enqueue(payments.submit_payments, queue="settlement")
    return {"data": [statements.render(session, row) for row in rows]}


@bp.route("/ops/statements", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.arguments(MonthArgs, location="query")
@bp.response(200, page_schema(StatementOut, "StatementPage"))
def list_all_statements(args: dict[str, Any]) -> Any:
    """Every merchant's monthly statements, newest first; `month` filters."""
    return _statement_page(args, merchant_id=None)


@bp.route("/ops/statements/<statement_id>", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.response(200, StatementOut)
def get_any_statement(statement_id: str) -> Any:
    """Any merchant's statement; `stm_….csv` and `stm_….pdf` give it as CSV or PDF."""
    return _rendition(statement_id, None)


@bp.route("/statements", methods=["GET"])
@require("statements:read")
@bp.arguments(MonthArgs, location="query")
@bp.response(200, page_schema(StatementOut, "MerchantStatementPage"))
def list_statements(args: dict[str, Any]) -> Any:
    """The calling merchant's own monthly statements, newest first."""
    return _statement_page(args, merchant_id=principal().merchant_id)


@bp.route("/statements/<statement_id>", methods=["GET"])
@require("statements:read")
@bp.response(200, StatementOut)
def get_statement(statement_id: str) -> Any:
    """One of the merchant's statements; `stm_….csv` and `stm_….pdf` give it as CSV or PDF."""
    return _rendition(statement_id, principal().merchant_id)


def _statement_page(args: dict[str, Any], merchant_id: int | None) -> Any:
    query = statements.listing()
    if merchant_id is not None:
        query = query.where(statements.statements.c.merchant_id == merchant_id)
    session = db.session()
    if args.get("month"):
        statements.check_month(session, args["month"])
        query = query.where(statements.statements.c.month == args["month"])
    return paginate(
        query, statements.statements.c.id, args, lambda r: statements.render(session, r)
    )


def _rendition(statement_id: str, merchant_id: int | None) -> Any:
    """JSON, or by the id's suffix a CSV or PDF download."""
    base, _, suffix = statement_id.partition(".")
    if suffix not in ("", "csv", "pdf"):
        raise NotFound("no such statement")
    view = statements.statement_view(db.session(), base, merchant_id)
    if suffix == "csv":
        return _download(renditions.statement_csv(view).encode(), "text/csv", f"{base}.csv")
    if suffix == "pdf":
        return _download(renditions.statement_pdf(view), "application/pdf", f"{base}.pdf")
    return view


def _download(body: bytes, mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.route("/ops/reports/flows", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.arguments(FlowArgs, location="query")
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
    today = clock.business_date(clock.utcnow(), _zone())
    return reports.liability(db.session(), economics.coalition_terms(db.session(), today))


def _zone() -> str:
    return str(current_app.config["COALITION_TIMEZONE"])
