"""Monthly statements over the API (SPEC 3.5): the operator states a month and reads every
merchant's statements; a merchant reads its own, as JSON, CSV or PDF."""

from __future__ import annotations

from typing import Any

from flask import Response

from coalition import clock
from coalition.errors import NotFound
from coalition.extensions import db
from coalition.jobs import enqueue
from coalition.web.access import operator_actor, principal, require
from coalition.web.api import page_schema, paginate
from settlement import renditions, schemas, statements, tasks
from settlement.api import bp


@bp.route("/ops/statements", methods=["POST"])
@require("operator", kinds=("operator",))
@bp.arguments(schemas.MonthIn)
@bp.response(201, schemas.StatementListOut)
@bp.alt_response(409, description="Days of the month are not settled (`days_not_settled`).")
def issue_statements(body: dict[str, Any]) -> Any:
    """State a month that has ended and whose days are all settled (`409 days_not_settled`
    names those that are not). Stating it again returns the same statements."""
    session = db.session()
    rows = statements.issue_month(session, body["month"], clock.utcnow(), actor=operator_actor())
    session.commit()
    enqueue(tasks.submit_payments, queue="settlement")
    return {"data": [statements.render(session, row) for row in rows]}


@bp.route("/ops/statements", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.arguments(schemas.MonthArgs, location="query")
@bp.response(200, page_schema(schemas.StatementOut, "StatementPage"))
def list_all_statements(args: dict[str, Any]) -> Any:
    """Every merchant's monthly statements, newest first; `month` filters."""
    return _statement_page(args, merchant_id=None)


@bp.route("/ops/statements/<statement_id>", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.response(200, schemas.StatementOut)
def get_any_statement(statement_id: str) -> Any:
    """Any merchant's statement; `stm_….csv` and `stm_….pdf` give it as CSV or PDF."""
    return _rendition(statement_id, None)


@bp.route("/statements", methods=["GET"])
@require("statements:read")
@bp.arguments(schemas.MonthArgs, location="query")
@bp.response(200, page_schema(schemas.StatementOut, "MerchantStatementPage"))
def list_statements(args: dict[str, Any]) -> Any:
    """The calling merchant's own monthly statements, newest first."""
    return _statement_page(args, merchant_id=principal().merchant_id)


@bp.route("/statements/<statement_id>", methods=["GET"])
@require("statements:read")
@bp.response(200, schemas.StatementOut)
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
