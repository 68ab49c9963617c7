"""The merchant API's points routes (SPEC 3.3): purchases (one or a batch), refunds,
redemptions, reversals, holds, and the merchant's transactions.

Thin HTTP: each body is validated by a Strict schema (`merchants.schemas`), each POST that moves
points runs through `idempotent()` (a savepoint, the Idempotency-Key, one commit), and the work is
done by `merchants.purchases` and the ledger's operations. Spending (a redemption or a hold)
needs proof that the member is there (SPEC 2): its current code with a merchant token, whose
wrong guesses are counted even though the refused spending leaves nothing behind; or a
member-delegated token with the `redeem` scope, for redemptions."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from flask import request
from marshmallow import RAISE
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from coalition import clock, economics
from coalition.database import table
from coalition.errors import CoalitionError, IdempotencyConflict, InvalidRequest, NotFound
from coalition.extensions import db
from coalition.ledger import operations
from coalition.ledger.accounts import lock_member
from coalition.ledger.models import Account, Hold, Transaction
from coalition.members import codes
from coalition.members.models import Member
from coalition.members.services import FoundMember, find_member
from coalition.web.access import InsufficientScope, principal, require
from coalition.web.api import blueprint, idempotent, page_schema, paginate
from merchants import purchases
from merchants.schemas import (
    BatchResultSchema,
    CaptureResultSchema,
    CaptureSchema,
    HoldRequestSchema,
    HoldResultSchema,
    PurchaseResultSchema,
    PurchaseSchema,
    RedemptionResultSchema,
    RedemptionSchema,
    RefundResultSchema,
    RefundSchema,
    ReversalResultSchema,
    TransactionQuerySchema,
    TransactionSchema,
    VoidSchema,
)

bp = blueprint("points", __name__, "Purchases, refunds, redemptions, holds and transactions")

transactions = table(Transaction)
holds = table(Hold)
members = table(Member)
accounts = table(Account)

NDJSON = "application/x-ndjson"
PUBLIC_ID = re.compile(r"[a-z]{3,4}_[A-Za-z0-9]{1,60}")


class UnsupportedMediaType(CoalitionError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


def _merchant_id() -> int:
    merchant_id = principal().merchant_id
    if merchant_id is None:  # `require` lets only merchant and member tokens in
        raise AssertionError("a points route ran without a merchant")
    return merchant_id


def _till() -> operations.Actor:
    return operations.Actor("merchant_client", principal().client_id)


def _checked_id(value: str, prefix: str, what: str) -> str:
    """A public id from the path, or `not_found` (never a query with a NUL byte in it)."""
    if not (PUBLIC_ID.fullmatch(value) and value.startswith(prefix + "_")):
        raise NotFound(f"no such {what}")
    return value


def _money(points: int) -> dict[str, Any]:
    return {"amount": economics.value_minor(points), "currency": economics.CURRENCY}


def _member_state(member: FoundMember, balance: int, available: int | None = None) -> dict:
    state: dict[str, Any] = {"id": member.public_id, "balance": balance, "tier": member.tier}
    if available is not None:
        state["available"] = available
    return state


def _member_by_id(session: Session, member_id: int) -> FoundMember:
    row = session.execute(
        select(
            members.c.id,
            members.c.public_id,
            members.c.card_number,
            members.c.status,
            members.c.tier,
            accounts.c.id.label("account_id"),
        )
        .join(accounts, accounts.c.member_id == members.c.id)
        .where(members.c.id == member_id)
    ).one_or_none()
    if row is None or row.status != "active":
        raise NotFound("no such member")
    return FoundMember(*row)


def _owner_of_transaction(
    session: Session, public_id: str, merchant_id: int, type: str, what: str
) -> tuple[FoundMember, Any]:
    """The member of this merchant's own transaction, and the transaction; another merchant's
    is `not_found`, exactly like one that does not exist (SPEC 3.2)."""
    row = session.execute(
        select(transactions.c.member_account_id, transactions.c.currency).where(
            transactions.c.public_id == public_id,
            transactions.c.merchant_id == merchant_id,
            transactions.c.type == type,
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no such {what}")
    member_id = session.execute(
        select(accounts.c.member_id).where(accounts.c.id == row.member_account_id)
    ).scalar_one()
    return _member_by_id(session, member_id), row


def _owner_of_hold(session: Session, hold_id: str, merchant_id: int) -> FoundMember:
    account_id = session.execute(
        select(holds.c.account_id).where(
            holds.c.public_id == hold_id, holds.c.merchant_id == merchant_id
        )
    ).scalar_one_or_none()
    if account_id is None:
        raise NotFound("no such hold")
    member_id = session.execute(
        select(accounts.c.member_id).where(accounts.c.id == account_id)
    ).scalar_one()
    return _member_by_id(session, member_id)


class _CodeCheck:
    """Checks a member's code inside the refused-or-not operation and, when it was wrong,
    counts the failure afterwards in the same commit (`idempotent`'s `on_refusal`)."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session, self.now = session, now
        self.wrong_for: int | None = None

    def consume(self, member_id: int, code: str) -> None:
        try:
            codes.consume(self.session, member_id, code, self.now)
        except codes.InvalidCode:
            self.wrong_for = member_id
            raise

    def on_refusal(self, problem: dict[str, Any]) -> None:
        if self.wrong_for is not None and problem.get("code") == codes.InvalidCode.code:
            codes.record_failure(self.session, self.wrong_for, self.now)


# Purchases.


@bp.route("/purchases", methods=["POST"])
@require("purchases:write")
@bp.arguments(PurchaseSchema)
@bp.response(201, PurchaseResultSchema)
@bp.alt_response(
    200,
    schema=PurchaseResultSchema,
    success=True,
    description="A replay: this external_id was recorded before; the first result.",
)
def create_purchase(purchase: dict[str, Any]) -> Any:
    """Record a purchase and award its points. Idempotent on `external_id` (and on the
    Idempotency-Key header): a repeat answers 200 with the first result; the same external_id
    for another purchase is 409 `idempotency_conflict`."""
    session, now, merchant_id, actor = db.session(), clock.utcnow(), _merchant_id(), _till()
    return idempotent(
        lambda: purchases.record_purchase(
            session, merchant_id=merchant_id, purchase=purchase, actor=actor, now=now
        )
    )


@bp.route("/purchases/batch", methods=["POST"])
@bp.doc(
    requestBody={
        "required": True,
        "description": f"Up to {purchases.MAX_BATCH_LINES} purchases: a JSON array, or NDJSON "
        "(one purchase a line).",
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Purchase"}}
            },
            NDJSON: {"schema": {"$ref": "#/components/schemas/Purchase"}},
        },
    }
)
@require("purchases:write")
@bp.response(200, BatchResultSchema)
def create_purchase_batch() -> Any:
    """Record many purchases. Each line gets the answer `POST /purchases` would give it, in
    order: 201, 200 (a replay of an earlier purchase or line), or a problem; a bad line never
    stops the others. More than 1,000 lines: 413 `batch_too_large`, nothing recorded."""
    ndjson = request.mimetype == NDJSON
    if not ndjson and not request.is_json:
        raise UnsupportedMediaType(f"send application/json (an array) or {NDJSON}")
    lines = purchases.parse_lines(request.get_data(), ndjson=ndjson)
    session, now, merchant_id, actor = db.session(), clock.utcnow(), _merchant_id(), _till()
    return idempotent(
        lambda: (
            200,
            {
                "results": purchases.record_batch(
                    session, merchant_id=merchant_id, lines=lines, actor=actor, now=now
                )
            },
        )
    )


@bp.route("/purchases/<purchase_id>/refunds", methods=["POST"])
@require("purchases:write")
@bp.arguments(RefundSchema)
@bp.response(201, RefundResultSchema)
def refund_purchase(refund: dict[str, Any], purchase_id: str) -> Any:
    """Refund all or part of a purchase: its points are clawed back in proportion (SPEC 2)."""
    session, now, merchant_id, actor = db.session(), clock.utcnow(), _merchant_id(), _till()
    _checked_id(purchase_id, "txn", "purchase")

    def operation() -> tuple[int, dict[str, Any]]:
        member, purchase = _owner_of_transaction(
            session, purchase_id, merchant_id, "earn", "purchase"
        )
        result = operations.refund(
            session,
            purchase_id=purchase_id,
            merchant_id=merchant_id,
            amount_minor=refund["amount"],
            actor=actor,
            now=now,
        )
        done = result["transaction"]
        return 201, {
            "points_clawed_back": done["points_clawed_back"],
            "transaction": {
                "id": done["id"],
                "type": "refund",
                "purchase": purchase_id,
                "amount": {"amount": refund["amount"], "currency": purchase.currency},
                "points_clawed_back": done["points_clawed_back"],
                "breakdown": done["breakdown"],
            },
            "member": _member_state(
                member, result["member"]["balance"], result["member"]["available"]
            ),
        }

    return idempotent(operation)


# Redemptions.


def _redemption_body(
    transaction_id: str, points: int, member: FoundMember, balance: int
) -> dict[str, Any]:
    return {
        "transaction": {
            "id": transaction_id,
            "type": "redeem",
            "points": points,
            "value": _money(points),
        },
        "member": _member_state(member, balance),
    }


@bp.route("/redemptions", methods=["POST"])
@bp.doc(security=[{"oauth2": ["redemptions:write"]}, {"oauth2": ["redeem"]}])
@require(kinds=("merchant", "member"))
@bp.arguments(RedemptionSchema)
@bp.response(201, RedemptionResultSchema)
@bp.alt_response(
    200,
    schema=RedemptionResultSchema,
    success=True,
    description="A replay: this external_id was redeemed before; the first result.",
)
def create_redemption(redemption: dict[str, Any]) -> Any:
    """Spend a member's points here. A merchant token (`redemptions:write`) names the member and
    gives its current code; a member-delegated token (`redeem`) is the proof itself and names
    neither. Idempotent on `external_id` like purchases. 422 `insufficient_points`, 403
    `invalid_code` (the fifth wrong code in 15 minutes locks: 403 `redemption_locked`)."""
    caller = principal()
    by_member = caller.kind == "member"
    needed = "redeem" if by_member else "redemptions:write"
    if needed not in caller.scopes:
        raise InsufficientScope(f"the token lacks the scope {needed}", required=[needed])
    given = [field for field in ("member", "code") if field in redemption]
    if by_member and given:
        raise InvalidRequest(
            "a member token names the member and proves its presence; send neither",
            errors={field: ["not allowed with a member token"] for field in given},
        )
    missing = [field for field in ("member", "code") if field not in redemption]
    if not by_member and missing:
        raise InvalidRequest(
            "the request has invalid fields; see errors",
            errors={field: ["Missing data for required field."] for field in missing},
        )
    session, now, merchant_id = db.session(), clock.utcnow(), _merchant_id()
    check = _CodeCheck(session, now)

    def operation() -> tuple[int, dict[str, Any]]:
        if by_member:
            member = _member_by_id(session, caller.member_id or 0)
            actor = operations.Actor("member", member.public_id)
        else:
            member = find_member(session, redemption["member"])
            actor = _till()
        # The account first, then the code: every path here locks in that order.
        account = lock_member(session, member.id)
        external_id, points = redemption["external_id"], redemption["points"]
        first = purchases.earlier_transactions(session, merchant_id, "redeem", [external_id]).get(
            external_id
        )
        if first is not None:
            if first.member_account_id != member.account_id or first.points != points:
                raise IdempotencyConflict(
                    f"external_id {external_id!r} was already used for a different redemption"
                    f" ({first.public_id}); use a new external_id",
                    transaction=first.public_id,
                )
            balance = purchases.balances_after(session, [first.id])[first.id]
            return 200, _redemption_body(first.public_id, first.points, member, balance)
        if not by_member:
            check.consume(member.id, redemption["code"])
        result = operations.redeem(
            session,
            member_id=member.id,
            merchant_id=merchant_id,
            points=points,
            actor=actor,
            now=now,
            external_id=external_id,
            locked=account,
        )
        return 201, _redemption_body(
            result["transaction"]["id"], points, member, result["member"]["balance"]
        )

    return idempotent(operation, on_refusal=check.on_refusal)


@bp.route("/redemptions/<redemption_id>/reversal", methods=["POST"])
@require("redemptions:write")
@bp.arguments(VoidSchema)
@bp.response(201, ReversalResultSchema)
def reverse_redemption(_body: dict[str, Any], redemption_id: str) -> Any:
    """Undo a redemption: its points go back to the lots they came from. Once: a second
    reversal is 409 `already_reversed`."""
    session, now, merchant_id, actor = db.session(), clock.utcnow(), _merchant_id(), _till()
    _checked_id(redemption_id, "txn", "redemption")

    def operation() -> tuple[int, dict[str, Any]]:
        member, _ = _owner_of_transaction(
            session, redemption_id, merchant_id, "redeem", "redemption"
        )
        result = operations.reverse_redemption(
            session, redemption_id=redemption_id, merchant_id=merchant_id, actor=actor, now=now
        )
        done = result["transaction"]
        return 201, {
            "transaction": {
                "id": done["id"],
                "type": "reversal",
                "redemption": redemption_id,
                "points": done["points"],
            },
            "member": _member_state(
                member, result["member"]["balance"], result["member"]["available"]
            ),
        }

    return idempotent(operation)


# Holds.


@bp.route("/holds", methods=["POST"])
@require("redemptions:write")
@bp.arguments(HoldRequestSchema)
@bp.response(201, HoldResultSchema)
def create_hold(hold: dict[str, Any]) -> Any:
    """Reserve a member's points (its current code is the proof) for 15 minutes, or
    `ttl_seconds` up to 7 days; capture or void it later."""
    session, now, merchant_id = db.session(), clock.utcnow(), _merchant_id()
    check = _CodeCheck(session, now)
    ttl = timedelta(seconds=hold.get("ttl_seconds", operations.HOLD_DEFAULT_TTL.total_seconds()))

    def operation() -> tuple[int, dict[str, Any]]:
        member = find_member(session, hold["member"])
        account = lock_member(session, member.id)
        check.consume(member.id, hold["code"])
        result = operations.place_hold(
            session,
            member_id=member.id,
            merchant_id=merchant_id,
            points=hold["points"],
            now=now,
            ttl=ttl,
            locked=account,
        )
        state = result["member"]
        return 201, {
            "hold": result["hold"],
            "member": _member_state(member, state["balance"], state["available"]),
        }

    return idempotent(operation, on_refusal=check.on_refusal)


@bp.route("/holds/<hold_id>/capture", methods=["POST"])
@require("redemptions:write")
@bp.arguments(CaptureSchema)
@bp.response(201, CaptureResultSchema)
def capture_hold(capture: dict[str, Any], hold_id: str) -> Any:
    """Spend all of a hold's points, or `points` of them (the rest is released): a redemption."""
    session, now, merchant_id, actor = db.session(), clock.utcnow(), _merchant_id(), _till()
    _checked_id(hold_id, "hold", "hold")

    def operation() -> tuple[int, dict[str, Any]]:
        member = _owner_of_hold(session, hold_id, merchant_id)
        result = operations.capture_hold(
            session,
            hold_id=hold_id,
            merchant_id=merchant_id,
            actor=actor,
            now=now,
            points=capture.get("points"),
        )
        done, state = result["transaction"], result["member"]
        return 201, {
            "transaction": {
                "id": done["id"],
                "type": "redeem",
                "points": done["points"],
                "value": _money(done["points"]),
                "hold": hold_id,
            },
            "member": _member_state(member, state["balance"], state["available"]),
        }

    return idempotent(operation)


@bp.route("/holds/<hold_id>/void", methods=["POST"])
@require("redemptions:write")
@bp.arguments(VoidSchema)
@bp.response(200, HoldResultSchema)
def void_hold(_body: dict[str, Any], hold_id: str) -> Any:
    """Release a hold without spending."""
    session, now, merchant_id = db.session(), clock.utcnow(), _merchant_id()
    _checked_id(hold_id, "hold", "hold")

    def operation() -> tuple[int, dict[str, Any]]:
        member = _owner_of_hold(session, hold_id, merchant_id)
        result = operations.void_hold(session, hold_id=hold_id, merchant_id=merchant_id, now=now)
        state = result["member"]
        return 200, {
            "hold": result["hold"],
            "member": _member_state(member, state["balance"], state["available"]),
        }

    return idempotent(operation)


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
@bp.arguments(TransactionQuerySchema, location="query", unknown=RAISE)
@bp.response(200, page_schema(TransactionSchema, "TransactionPage"))
def list_transactions(query: dict[str, Any]) -> Any:
    """This merchant's own transactions, newest first: filters `member` (card or `mbr_` id),
    `type`, `since` (inclusive), `until` (exclusive); cursor-paginated."""
    session, merchant_id = db.session(), _merchant_id()
    original = aliased(transactions)
    statement = (
        select(
            transactions.c.id,
            transactions.c.public_id,
            transactions.c.type,
            transactions.c.points,
            members.c.public_id.label("member"),
            transactions.c.amount_minor,
            transactions.c.currency,
            transactions.c.external_id,
            transactions.c.breakdown,
            original.c.public_id.label("original"),
            transactions.c.reason,
            transactions.c.occurred_at,
            transactions.c.created_at,
        )
        .select_from(
            transactions.join(accounts, accounts.c.id == transactions.c.member_account_id)
            .join(members, members.c.id == accounts.c.member_id)
            .outerjoin(original, original.c.id == transactions.c.original_id)
        )
        .where(transactions.c.merchant_id == merchant_id)
    )
    if query.get("member"):
        try:
            member = find_member(session, query["member"])
        except NotFound:
            return {"data": [], "next_cursor": None}
        statement = statement.where(transactions.c.member_account_id == member.account_id)
    if query.get("type"):
        statement = statement.where(transactions.c.type == query["type"])
    if query.get("since"):
        statement = statement.where(transactions.c.created_at >= query["since"])
    if query.get("until"):
        statement = statement.where(transactions.c.created_at < query["until"])
    return paginate(statement, transactions.c.id, query, _render_transaction)
