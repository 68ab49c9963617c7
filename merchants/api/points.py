"""The merchant API's points routes (SPEC 3.3): purchases (one or a batch), refunds,
redemptions, reversals, holds, and the merchant's transactions.

Thin HTTP: each body is validated by a Strict schema (`merchants.schemas`; the batch's, line by
line, by `merchants.api.batch`), the work is done by `merchants.purchases` (purchases and
refunds) and `merchants.redemptions` (redemptions, reversals and holds), and their results are
serialised by the route's response schema; each POST that moves points runs through
`idempotent()` (a savepoint, the Idempotency-Key and the answer it keeps, one commit).
Spending (a redemption or a hold) needs proof that the member is there (SPEC 2): its current
code with a merchant token, whose wrong guesses are counted even though the refused spending
leaves nothing behind; or a member-delegated token with the `redeem` scope, for redemptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import request
from marshmallow import RAISE, Schema

from coalition import clock
from coalition.errors import CoalitionError, NotFound
from coalition.extensions import db
from coalition.ids import is_public_id
from coalition.ledger import reads
from coalition.ledger.rows import Actor
from coalition.members.services import find_member
from coalition.web.access import principal, require
from coalition.web.api import blueprint, idempotent, page_schema, paginate
from coalition.web.bodies import check_json_body
from merchants import purchases, redemptions, schemas
from merchants.api import batch

bp = blueprint("points", __name__, "Purchases, refunds, redemptions, holds and transactions")

# What serialises each route's result: the schema its `@bp.response` documents.
REFUND_RESULT = schemas.RefundResultSchema()
REDEMPTION_RESULT = schemas.RedemptionResultSchema()
REVERSAL_RESULT = schemas.ReversalResultSchema()
HOLD_RESULT = schemas.HoldResultSchema()
CAPTURE_RESULT = schemas.CaptureResultSchema()


def _merchant_id() -> int:
    merchant_id = principal().merchant_id
    if merchant_id is None:  # `require` lets only merchant and member tokens in
        raise AssertionError("a points route ran without a merchant")
    return merchant_id


def _till() -> Actor:
    return Actor("merchant_client", principal().client_id)


def _answer(schema: Schema, result: Any, status: int = 201) -> tuple[int, dict[str, Any]]:
    """A result as `idempotent` keeps and sends it: `status`, or 200 for a replay of an earlier
    result (a purchase, refund or redemption recorded before under its external_id)."""
    return (200 if getattr(result, "replayed", False) else status), schema.dump(result)


def purchase_body(result: purchases.PurchaseResult) -> dict[str, Any]:
    """`PurchaseResultSchema().dump(result)`, written out: a batch answers a thousand purchases, and
    marshmallow would spend more time on them than the database does (docs/benchmarks.md).
    tests/merchants/api/test_points.py holds the two to the same answer."""
    earn, member = result.transaction, result.member
    return {
        "transaction": {
            "id": earn.id,
            "type": earn.type,
            "points": earn.points,
            "breakdown": {part: earn.breakdown[part] for part in BREAKDOWN_PARTS},
        },
        "member": {"id": member.id, "balance": member.balance, "tier": member.tier},
    }


BREAKDOWN_PARTS = tuple(schemas.BreakdownSchema().fields)


def _purchase_answer(result: purchases.PurchaseResult) -> tuple[int, dict[str, Any]]:
    return (200 if result.replayed else 201), purchase_body(result)


def _line(number: int, outcome: purchases.Outcome) -> dict[str, Any]:
    """A line of the batch as `POST /purchases` would have answered it."""
    if isinstance(outcome, CoalitionError):
        return {"line": number, "status": outcome.status, "body": outcome.problem()}
    status, body = _purchase_answer(outcome)
    return {"line": number, "status": status, "body": body}


def _checked_id(value: str, prefix: str, what: str) -> str:
    """A public id of the kind the route takes, or `not_found` without a query."""
    if not is_public_id(value, prefix):
        raise NotFound(f"no such {what}")
    return value


# Purchases.


@bp.route("/purchases", methods=["POST"])
@require("purchases:write")
@bp.arguments(schemas.PurchaseSchema)
@bp.response(201, schemas.PurchaseResultSchema)
@bp.alt_response(404, description="No such member (`not_found`).")
@bp.alt_response(
    409, description="The Idempotency-Key or `external_id` was used for another request."
)
@bp.alt_response(
    200,
    schema=schemas.PurchaseResultSchema,
    success=True,
    description="A replay: this external_id was recorded before; the first result.",
)
def create_purchase(purchase: dict[str, Any]) -> Any:
    """Record a purchase and award its points. Idempotent on `external_id` (and on the
    Idempotency-Key header): a repeat answers 200 with the first result; the same external_id
    for another purchase is 409 `idempotency_conflict`."""
    session, now, merchant_id, actor = db.session(), clock.utcnow(), _merchant_id(), _till()
    return idempotent(
        lambda: _purchase_answer(
            purchases.record_purchase(
                session, merchant_id=merchant_id, purchase=purchase, actor=actor, now=now
            )
        )
    )


@bp.route("/purchases/batch", methods=["POST"])
@bp.doc(requestBody=schemas.BATCH_REQUEST_BODY)
@require("purchases:write")
@bp.response(200, schemas.BatchResultSchema)
@bp.alt_response(409, description="The Idempotency-Key was used for another request.")
@bp.alt_response(413, description="More than 1,000 lines (`batch_too_large`), or over 10 MiB.")
@bp.alt_response(415, description="Neither JSON nor NDJSON (`unsupported_media_type`).")
def create_purchase_batch() -> Any:
    """Record many purchases. Each line gets the answer `POST /purchases` would give it, in
    order: 201, 200 (a replay of an earlier purchase or line), or a problem; a bad line never
    stops the others. More than 1,000 lines: 413 `batch_too_large`, nothing recorded."""
    check_json_body(required=True, also=(schemas.NDJSON,))
    ndjson = request.mimetype == schemas.NDJSON
    parsed = batch.parse_lines(request.get_data(), ndjson=ndjson)
    session, now, merchant_id, actor = db.session(), clock.utcnow(), _merchant_id(), _till()

    def record() -> tuple[int, dict[str, Any]]:
        outcomes = purchases.record_batch(
            session, merchant_id=merchant_id, lines=parsed.lines, actor=actor, now=now
        )
        answers = {
            line.number: _line(line.number, outcome)
            for line, outcome in zip(parsed.lines, outcomes, strict=True)
        }
        answers.update({n: _line(n, refusal) for n, refusal in parsed.refused.items()})
        # Each line is already in BatchLineSchema's shape (`_line`): no second pass over them.
        return 200, {"results": [answers[n] for n in sorted(answers)]}

    return idempotent(record)


@bp.route("/purchases/<purchase_id>/refunds", methods=["POST"])
@require("purchases:write")
@bp.arguments(schemas.RefundSchema)
@bp.response(201, schemas.RefundResultSchema)
@bp.alt_response(
    200,
    schema=schemas.RefundResultSchema,
    success=True,
    description="A replay: this return receipt was refunded before; the first result.",
)
@bp.alt_response(409, description="The Idempotency-Key was used for another request.")
def refund_purchase(refund: dict[str, Any], purchase_id: str) -> Any:
    """Refund all or part of a purchase: its points are clawed back in proportion (SPEC 2).
    Idempotent on `external_id`, the till's return receipt (and on the Idempotency-Key header):
    a repeat for the same purchase and amount answers 200 with the first result; the same
    external_id for another refund is 409 `idempotency_conflict`."""
    session, now, merchant_id, actor = db.session(), clock.utcnow(), _merchant_id(), _till()
    _checked_id(purchase_id, "txn", "purchase")
    return idempotent(
        lambda: _answer(
            REFUND_RESULT,
            purchases.refund_purchase(
                session,
                merchant_id=merchant_id,
                purchase_id=purchase_id,
                amount_minor=refund["amount"],
                external_id=refund["external_id"],
                actor=actor,
                now=now,
            ),
        )
    )


# Redemptions.


@bp.route("/redemptions", methods=["POST"])
@require(by_kind={"merchant": ("redemptions:write",), "member": ("redeem",)})
@bp.arguments(schemas.RedemptionSchema)
@bp.response(201, schemas.RedemptionResultSchema)
@bp.alt_response(
    403,
    description="A wrong or used code (`invalid_code`), locked after five (`redemption_locked`); "
    "or a token refused as for every operation.",
)
@bp.alt_response(404, description="No such member (`not_found`).")
@bp.alt_response(
    409, description="The Idempotency-Key or `external_id` was used for another request."
)
@bp.alt_response(
    200,
    schema=schemas.RedemptionResultSchema,
    success=True,
    description="A replay: this external_id was redeemed before; the first result.",
)
@bp.alt_response(
    429,
    description="Over an operator's velocity limit (`velocity_limit_exceeded`): nothing is "
    "spent; `Retry-After` says when it would fit, when waiting can help.",
)
def create_redemption(redemption: dict[str, Any]) -> Any:
    """Spend a member's points here. A merchant token (`redemptions:write`) names the member and
    gives its current code; a member-delegated token (`redeem`) is the proof itself and names
    neither. Idempotent on `external_id` like purchases. 422 `insufficient_points`, 403
    `invalid_code` (the fifth wrong code in 15 minutes locks: 403 `redemption_locked`)."""
    caller = principal()
    by_member = caller.kind == "member"
    schemas.check_redemption_proof(redemption, by_member=by_member)
    session, now, merchant_id, actor = db.session(), clock.utcnow(), _merchant_id(), _till()
    check = redemptions.CodeCheck(session, now)
    return idempotent(
        lambda: _answer(
            REDEMPTION_RESULT,
            redemptions.record_redemption(
                session,
                merchant_id=merchant_id,
                redemption=redemption,
                actor=actor,
                check=check,
                now=now,
                member_id=(caller.member_id or 0) if by_member else None,
            ),
        ),
        on_refusal=check.on_refusal,
    )


@bp.route("/redemptions/<redemption_id>/reversal", methods=["POST"])
@require("redemptions:write")
@bp.arguments(schemas.VoidSchema, required=False)
@bp.response(201, schemas.ReversalResultSchema)
@bp.alt_response(
    409, description="Reversed before (`already_reversed`), or the Idempotency-Key was reused."
)
def reverse_redemption(_body: dict[str, Any], redemption_id: str) -> Any:
    """Undo a redemption: its points go back to the lots they came from. Once: a second
    reversal is 409 `already_reversed`."""
    session, now, merchant_id, actor = db.session(), clock.utcnow(), _merchant_id(), _till()
    _checked_id(redemption_id, "txn", "redemption")
    return idempotent(
        lambda: _answer(
            REVERSAL_RESULT,
            redemptions.reverse_redemption(
                session, merchant_id=merchant_id, redemption_id=redemption_id, actor=actor, now=now
            ),
        )
    )


# Holds.


@bp.route("/holds", methods=["POST"])
@require("redemptions:write")
@bp.arguments(schemas.HoldRequestSchema)
@bp.response(201, schemas.HoldResultSchema)
@bp.alt_response(
    403,
    description="A wrong or used code (`invalid_code`), locked after five (`redemption_locked`); "
    "or a token refused as for every operation.",
)
@bp.alt_response(404, description="No such member (`not_found`).")
@bp.alt_response(409, description="The Idempotency-Key was used for another request.")
@bp.alt_response(
    429,
    description="Over an operator's velocity limit (`velocity_limit_exceeded`): nothing is "
    "spent; `Retry-After` says when it would fit, when waiting can help.",
)
def create_hold(hold: dict[str, Any]) -> Any:
    """Reserve a member's points (its current code is the proof) for 15 minutes, or
    `ttl_seconds` up to 7 days; capture or void it later."""
    session, now, merchant_id = db.session(), clock.utcnow(), _merchant_id()
    check = redemptions.CodeCheck(session, now)
    return idempotent(
        lambda: _answer(
            HOLD_RESULT,
            redemptions.place_hold(
                session, merchant_id=merchant_id, hold=hold, check=check, now=now
            ),
        ),
        on_refusal=check.on_refusal,
    )


@bp.route("/holds/<hold_id>/capture", methods=["POST"])
@require("redemptions:write")
@bp.arguments(schemas.CaptureSchema, required=False)
@bp.response(201, schemas.CaptureResultSchema)
@bp.alt_response(
    409, description="Captured, voided or expired (`hold_not_active`), or the key was reused."
)
@bp.alt_response(
    429,
    description="Over an operator's velocity limit (`velocity_limit_exceeded`): nothing is "
    "spent; `Retry-After` says when it would fit, when waiting can help.",
)
def capture_hold(capture: dict[str, Any], hold_id: str) -> Any:
    """Spend all of a hold's points, or `points` of them (the rest is released): a redemption."""
    session, now, merchant_id, actor = db.session(), clock.utcnow(), _merchant_id(), _till()
    _checked_id(hold_id, "hold", "hold")
    check = redemptions.CodeCheck(session, now)
    return idempotent(
        lambda: _answer(
            CAPTURE_RESULT,
            redemptions.capture_hold(
                session,
                merchant_id=merchant_id,
                hold_id=hold_id,
                points=capture.get("points"),
                actor=actor,
                now=now,
                check=check,
            ),
        ),
        on_refusal=check.on_refusal,
    )


@bp.route("/holds/<hold_id>/void", methods=["POST"])
@require("redemptions:write")
@bp.arguments(schemas.VoidSchema, required=False)
@bp.response(200, schemas.HoldResultSchema)
@bp.alt_response(
    409, description="Captured, voided or expired (`hold_not_active`), or the key was reused."
)
def void_hold(_body: dict[str, Any], hold_id: str) -> Any:
    """Release a hold without spending."""
    session, now, merchant_id = db.session(), clock.utcnow(), _merchant_id()
    _checked_id(hold_id, "hold", "hold")
    return idempotent(
        lambda: _answer(
            HOLD_RESULT,
            redemptions.void_hold(session, merchant_id=merchant_id, hold_id=hold_id, now=now),
            status=200,
        )
    )


# Transactions.


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _render_transaction(row: Any) -> dict[str, Any]:
    return {
        "id": row.public_id,
        "type": row.type,
        "points": row.points,
        "member": row.member,
        "amount": (
            {"amount": row.amount_minor, "currency": row.currency}
            if row.amount_minor is not None
            else None
        ),
        "external_id": row.external_id,
        "breakdown": row.breakdown,
        "original": row.original,
        "reason": row.reason,
        "occurred_at": _iso(row.occurred_at),
        "created_at": _iso(row.created_at),
    }


@bp.route("/transactions", methods=["GET"])
@require("transactions:read")
# A mistyped filter must not silently list everything: unknown query parameters are refused too.
@bp.arguments(schemas.TransactionQuerySchema, location="query", unknown=RAISE)
@bp.response(200, page_schema(schemas.TransactionSchema, "TransactionPage"))
def list_transactions(query: dict[str, Any]) -> Any:
    """This merchant's own transactions, newest first: filters `member` (card or `mbr_` id),
    `type`, `since` (inclusive), `until` (exclusive); cursor-paginated."""
    session, merchant_id = db.session(), _merchant_id()
    member_account_id = None
    if query.get("member"):
        try:
            member_account_id = find_member(session, query["member"]).account_id
        except NotFound:
            return {"data": [], "next_cursor": None}
    statement = reads.merchant_transactions(
        merchant_id,
        member_account_id=member_account_id,
        type=query.get("type"),
        since=query.get("since"),
        until=query.get("until"),
    )
    return paginate(statement, reads.transactions.c.id, query, _render_transaction)
