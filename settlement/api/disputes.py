"""Statement disputes over the API (SPEC 3.10): a merchant disputes a line of its statement
(`POST /statements/{id}/disputes`, within 14 days of its issue) and reads its disputes; the
operator lists every merchant's and resolves one with a credit or debit note, or rejects it.
Thin: validate with `settlement.schemas`, call `settlement.disputes`, serialise. The POSTs go
through `idempotent`."""

from __future__ import annotations

from typing import Any

from coalition import clock
from coalition.extensions import db
from coalition.web.access import operator_actor, principal, require
from coalition.web.api import decode_cursor, idempotent, page_schema, paginate
from settlement import disputes, schemas
from settlement.api import bp

DISPUTE = schemas.DisputeOut()


@bp.route("/statements/<statement_id>/disputes", methods=["POST"])
@require("statements:read")
@bp.arguments(schemas.DisputeIn)
@bp.response(201, schemas.DisputeOut)
@bp.alt_response(
    409,
    description="The line is disputed already and not yet answered (`dispute_open`), or the "
    "Idempotency-Key was used for another request.",
)
@bp.alt_response(
    422,
    description="No such line (`validation_error`, naming `line`), or the statement was issued "
    "more than 14 days ago (`dispute_window_closed`).",
)
def raise_dispute(body: dict[str, Any], statement_id: str) -> Any:
    """Dispute one line of one of the merchant's statements, with a reason, until the 14th day
    after the statement's issue (to that day's end in the coalition's time zone). `line` is the
    line's number in the statement's `lines`, from 1. Needs `statements:read` (decision 329).
    Staff answer with a credit or debit note,
    stated in the merchant's next statement, or a rejection (`dispute.resolved`)."""
    merchant_id = principal().merchant_id
    assert merchant_id is not None  # `require` let only merchant tokens in
    session, now = db.session(), clock.utcnow()

    def create() -> tuple[int, dict[str, Any]]:
        view = disputes.raise_dispute(
            session, merchant_id, statement_id, body["line"], body["reason"], now
        )
        return 201, DISPUTE.dump(view)

    return idempotent(create)


@bp.route("/statements/<statement_id>/disputes", methods=["GET"])
@require("statements:read")
@bp.arguments(schemas.DisputeArgs, location="query")
@bp.response(200, page_schema(schemas.DisputeOut, "StatementDisputePage"))
def list_statement_disputes(args: dict[str, Any], statement_id: str) -> Any:
    """The disputes of one of the merchant's statements, newest first."""
    merchant_id = principal().merchant_id
    assert merchant_id is not None
    if args.get("cursor"):
        decode_cursor(args["cursor"])  # a forged cursor is refused first, as on every list
    disputes.check_statement(db.session(), statement_id, merchant_id)
    return _page(disputes.merchant_disputes(merchant_id, statement_id), args)


@bp.route("/disputes", methods=["GET"])
@require("statements:read")
@bp.arguments(schemas.DisputeArgs, location="query")
@bp.response(200, page_schema(schemas.DisputeOut, "MerchantDisputePage"))
def list_disputes(args: dict[str, Any]) -> Any:
    """The merchant's disputes of all its statements, newest first; `status` filters."""
    merchant_id = principal().merchant_id
    assert merchant_id is not None
    return _page(disputes.merchant_disputes(merchant_id), args)


@bp.route("/ops/disputes", methods=["GET"])
@require("operator", kinds=("operator",))
@bp.arguments(schemas.DisputeArgs, location="query")
@bp.response(200, page_schema(schemas.DisputeOut, "DisputePage"))
def list_all_disputes(args: dict[str, Any]) -> Any:
    """Every merchant's disputes, newest first; `status=open` lists those waiting for an answer."""
    return _page(disputes.all_disputes(), args)


@bp.route("/ops/disputes/<dispute_id>/resolve", methods=["POST"])
@require("operator", kinds=("operator",))
@bp.arguments(schemas.ResolveIn)
@bp.response(200, schemas.DisputeOut)
@bp.alt_response(
    409,
    description="The dispute is settled already (`dispute_closed`), or the Idempotency-Key was "
    "used for another request.",
)
def resolve_dispute(body: dict[str, Any], dispute_id: str) -> Any:
    """Settle an open dispute: `credit_note` (the operator owes the merchant `amount`) or
    `debit_note` (the merchant owes it), stated as its own line in the merchant's next
    statement; or `reject`, with a `reason`. The disputed statement is never changed. Audited;
    the merchant hears `dispute.resolved`."""
    session, now, actor = db.session(), clock.utcnow(), operator_actor()
    amount = body.get("amount")

    def settle() -> tuple[int, dict[str, Any]]:
        view = disputes.resolve(
            session,
            dispute_id,
            body["outcome"],
            None if amount is None else amount["amount"],
            None if amount is None else amount["currency"],
            body.get("reason"),
            actor,
            now,
        )
        return 200, DISPUTE.dump(view)

    return idempotent(settle)


def _page(query: Any, args: dict[str, Any]) -> Any:
    if args.get("status"):
        query = query.where(disputes.disputes.c.status == args["status"])
    return paginate(query, disputes.DISPUTE_ID, args, disputes.render)
