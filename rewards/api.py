"""The catalogue's API (SPEC 3.3-3.5). One path, `/api/v1/rewards`, serves two callers by the
kind of their token (decision 284): a merchant's token (scope `rewards:write`) lists and changes
the merchant's own listings; a member-delegated token reads the whole catalogue. The operator
lists its own at `/api/v1/ops/rewards`. Members order and cancel at `/api/v1/me/orders` (scope
`redeem`); a supplier lists its orders, fulfils them and accepts vouchers. Thin: validate with
`rewards.schemas`, call `rewards.services` or `rewards.reads`, serialise."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import url_for
from sqlalchemy.orm import Session

from coalition import audit, clock
from coalition.extensions import db
from coalition.web.access import operator_actor, principal, require
from coalition.web.api import PageArgs, blueprint, idempotent, page_schema, paginate
from rewards import reads, schemas, services
from rewards.reads import OrderView, RewardView, Supplier

bp = blueprint("rewards", __name__, "The rewards catalogue, orders and vouchers")

SCOPE = "rewards:write"
MERCHANT = ("merchant",)
OPERATOR = ("operator",)


def _merchant_id() -> int:
    merchant_id = principal().merchant_id
    if merchant_id is None:  # `require` lets only merchant tokens in
        raise AssertionError("a merchant route ran without a merchant")
    return merchant_id


def _member() -> tuple[int, int]:
    found = principal()
    if found.member_id is None or found.member_account_id is None:
        raise AssertionError("a member route ran without a member")
    return found.member_id, found.member_account_id


def _reward(view: RewardView) -> dict[str, Any]:
    shown = view.as_dict()
    shown["image_url"] = (
        url_for("reward_images.image", reward_id=view.id, v=view.updated_at.timestamp())
        if view.has_image
        else None
    )
    return shown


# Listings -------------------------------------------------------------------------------------


@bp.route("/rewards", methods=["GET"])
@require(by_kind={"merchant": (SCOPE,), "member": ("balance:read",)})
@bp.arguments(schemas.CatalogueArgs, location="query")
@bp.response(200, page_schema(schemas.RewardOut, "RewardPage"))
def list_rewards(args: dict[str, Any]) -> Any:
    """With a merchant's token: the merchant's own listings, newest first, whatever their dates
    and stock (the filters apply to the members' catalogue only). With a member-delegated
    token: the whole catalogue, what may be ordered now from every supplier, filtered by
    `category`, `supplier` (a `mer_` id or `operator`) and points (`min_points`,
    `max_points`); the members' listing carries no `cost_price`."""
    if principal().kind == "merchant":
        return paginate(
            reads.own_rewards(_merchant_id()),
            reads.REWARD_ID,
            args,
            lambda row: _reward(reads.reward_view(row)),
        )
    query = reads.catalogue(
        clock.utcnow(),
        category=args.get("category", "").lower() or None,
        supplier=args.get("supplier"),
        min_points=args.get("min_points"),
        max_points=args.get("max_points"),
    )

    def shown(row: Any) -> dict[str, Any]:
        found = _reward(reads.reward_view(row))
        found.pop("cost_price")
        return found

    return paginate(query, reads.REWARD_ID, args, shown)


def _create(supplier: Supplier, body: dict[str, Any]) -> Any:
    session, now = db.session(), clock.utcnow()

    def create() -> tuple[int, dict[str, Any]]:
        view = services.create_reward(session, supplier, body, now)
        if supplier is None:
            audit.record(
                session,
                operator_actor(),
                "reward.created",
                "reward",
                view.id,
                after={"name": view.name, "points": view.points},
                now=now,
            )
        return 201, schemas.RewardOut().dump(_reward(view))

    return idempotent(create)


def _update(supplier: Supplier, reward_id: str, body: dict[str, Any]) -> Any:
    session, now = db.session(), clock.utcnow()
    view = services.update_reward(session, supplier, reward_id, body, now)
    if supplier is None:
        audit.record(
            session,
            operator_actor(),
            "reward.updated",
            "reward",
            view.id,
            after={"name": view.name, "points": view.points},
            now=now,
        )
    session.commit()
    return _reward(view)


@bp.route("/rewards", methods=["POST"])
@require(SCOPE, kinds=MERCHANT)
@bp.arguments(schemas.RewardIn)
@bp.response(201, schemas.RewardOut)
@bp.alt_response(409, description="The Idempotency-Key was used for another request.")
def create_reward(body: dict[str, Any]) -> Any:
    """List a reward: a gift, a voucher or an experience, its points price, stock (null:
    unlimited), optional cost price, validity, promised fulfilment days, category, description.
    Its image is uploaded in the portal."""
    return _create(_merchant_id(), body)


@bp.route("/rewards/<reward_id>", methods=["GET"])
@require(SCOPE, kinds=MERCHANT)
@bp.response(200, schemas.RewardOut)
def get_reward(reward_id: str) -> Any:
    """One of the merchant's listings. Another supplier's: `404`."""
    return _reward(
        reads.reward_view(reads.supplier_reward_row(db.session(), _merchant_id(), reward_id))
    )


@bp.route("/rewards/<reward_id>", methods=["PUT"])
@require(SCOPE, kinds=MERCHANT)
@bp.arguments(schemas.RewardIn)
@bp.response(200, schemas.RewardOut)
def update_reward(body: dict[str, Any], reward_id: str) -> Any:
    """Replace a listing's fields (all of them, as when listing it). Orders already placed keep
    their price. Another supplier's: `404`."""
    return _update(_merchant_id(), reward_id, body)


@bp.route("/ops/rewards", methods=["GET"])
@require("operator", kinds=OPERATOR)
@bp.arguments(PageArgs, location="query")
@bp.response(200, page_schema(schemas.RewardOut, "OperatorRewardPage"))
def list_operator_rewards(args: dict[str, Any]) -> Any:
    """The operator's own listings, newest first."""
    return paginate(
        reads.own_rewards(None), reads.REWARD_ID, args, lambda row: _reward(reads.reward_view(row))
    )


@bp.route("/ops/rewards", methods=["POST"])
@require("operator", kinds=OPERATOR)
@bp.arguments(schemas.RewardIn)
@bp.response(201, schemas.RewardOut)
@bp.alt_response(409, description="The Idempotency-Key was used for another request.")
def create_operator_reward(body: dict[str, Any]) -> Any:
    """List a reward the operator supplies (as a merchant does at `/api/v1/rewards`)."""
    return _create(None, body)


@bp.route("/ops/rewards/<reward_id>", methods=["PUT"])
@require("operator", kinds=OPERATOR)
@bp.arguments(schemas.RewardIn)
@bp.response(200, schemas.RewardOut)
def update_operator_reward(body: dict[str, Any], reward_id: str) -> Any:
    """Replace one of the operator's listings. A merchant's listing: `404`."""
    return _update(None, reward_id, body)


# Orders: the member ---------------------------------------------------------------------------


def _member_order(view: OrderView) -> dict[str, Any]:
    return schemas.MemberOrderOut().dump(view.for_member())


@bp.route("/me/orders", methods=["POST"])
@require("redeem", kinds=("member",))
@bp.arguments(schemas.OrderIn)
@bp.response(201, schemas.MemberOrderOut)
@bp.alt_response(
    409,
    description="Out of stock (`out_of_stock`), not offered now (`reward_unavailable`), or the "
    "Idempotency-Key was used for another request.",
)
@bp.alt_response(404, description="No such reward (`not_found`).")
@bp.alt_response(422, description="Not enough points (`insufficient_points`).")
def place_order(body: dict[str, Any]) -> Any:
    """Order a reward with points (`quantity`, default 1; a voucher one at a time). The points
    are redeemed at the reward's supplier; a voucher's answer carries its `voucher_code`."""
    session, now = db.session(), clock.utcnow()
    member_id, _ = _member()
    return idempotent(
        lambda: (
            201,
            _member_order(
                services.place_order(
                    session,
                    member_id=member_id,
                    reward_id=body["reward"],
                    quantity=body["quantity"],
                    now=now,
                )
            ),
        )
    )


@bp.route("/me/orders", methods=["GET"])
@require("redeem", kinds=("member",))
@bp.arguments(schemas.OrdersArgs, location="query")
@bp.response(200, page_schema(schemas.MemberOrderOut, "MemberOrderPage"))
def my_orders(args: dict[str, Any]) -> Any:
    """The member's orders, newest first."""
    _, account_id = _member()
    query = reads.member_orders(account_id)
    if args.get("status"):
        query = query.where(reads.orders.c.status == args["status"])
    return paginate(query, reads.ORDER_ID, args, lambda row: reads.order_view(row).for_member())


@bp.route("/me/orders/<order_id>/cancel", methods=["POST"])
@require("redeem", kinds=("member",))
@bp.response(200, schemas.MemberOrderOut)
@bp.alt_response(409, description="The order is fulfilled or cancelled (`order_not_pending`).")
def cancel_my_order(order_id: str) -> Any:
    """Cancel a pending order: its points go back to the lots they came from. Another
    member's order: `404`."""
    session, now = db.session(), clock.utcnow()
    _, account_id = _member()
    return idempotent(
        lambda: (
            200,
            _member_order(
                services.cancel_order(
                    session, member_account_id=account_id, order_id=order_id, now=now
                )
            ),
        )
    )


# Orders: the supplier -------------------------------------------------------------------------


def _supplier_order(view: OrderView) -> dict[str, Any]:
    return schemas.SupplierOrderOut().dump(view.for_supplier())


@bp.route("/orders", methods=["GET"])
@require(SCOPE, kinds=MERCHANT)
@bp.arguments(schemas.OrdersArgs, location="query")
@bp.response(200, page_schema(schemas.SupplierOrderOut, "SupplierOrderPage"))
def supplier_orders(args: dict[str, Any]) -> Any:
    """Orders of the merchant's rewards, newest first; `status` filters. A voucher's code is
    never shown here: the member brings it to the till."""
    return paginate(
        reads.supplier_orders(_merchant_id(), args.get("status")),
        reads.ORDER_ID,
        args,
        lambda row: reads.order_view(row).for_supplier(),
    )


@bp.route("/orders/<order_id>/fulfil", methods=["POST"])
@require(SCOPE, kinds=MERCHANT)
@bp.response(200, schemas.SupplierOrderOut)
@bp.alt_response(
    409,
    description="Fulfilled or cancelled already (`order_not_pending`), or a voucher's order, "
    "fulfilled by accepting its code (`voucher_order`).",
)
def fulfil_order(order_id: str) -> Any:
    """The merchant has delivered the order. Another merchant's order: `404`."""
    session, now, merchant_id = db.session(), clock.utcnow(), _merchant_id()
    return idempotent(
        lambda: (
            200,
            _supplier_order(services.fulfil_order(session, merchant_id, order_id, now)),
        )
    )


@bp.route("/vouchers/<code>/accept", methods=["POST"])
@require(SCOPE, kinds=MERCHANT)
@bp.response(200, schemas.SupplierOrderOut)
@bp.alt_response(
    409,
    description="Accepted before (`voucher_already_accepted`), or its order was cancelled "
    "(`order_not_pending`).",
)
def accept_voucher(code: str) -> Any:
    """The till accepts a voucher of this merchant's, once; that fulfils its order. The code as
    printed (`7KQ2-M9XD-4HTV-0CRB`) or typed loosely (no dashes, lower case, O for 0). Another
    merchant's voucher, or an unknown code: `404`."""
    session, now, merchant_id = db.session(), clock.utcnow(), _merchant_id()
    return idempotent(
        lambda: (
            200,
            _supplier_order(services.accept_voucher(session, merchant_id, code, now)),
        )
    )


# Orders: the operator, for its own rewards ----------------------------------------------------


@bp.route("/ops/orders", methods=["GET"])
@require("operator", kinds=OPERATOR)
@bp.arguments(schemas.OrdersArgs, location="query")
@bp.response(200, page_schema(schemas.SupplierOrderOut, "OperatorOrderPage"))
def operator_orders(args: dict[str, Any]) -> Any:
    """Orders of the operator's own rewards, newest first; `status` filters."""
    return paginate(
        reads.supplier_orders(None, args.get("status")),
        reads.ORDER_ID,
        args,
        lambda row: reads.order_view(row).for_supplier(),
    )


@bp.route("/ops/orders/<order_id>/fulfil", methods=["POST"])
@require("operator", kinds=OPERATOR)
@bp.response(200, schemas.SupplierOrderOut)
@bp.alt_response(409, description="Fulfilled or cancelled already, or a voucher's order.")
def fulfil_operator_order(order_id: str) -> Any:
    """The operator has delivered one of its orders. A merchant's order: `404`."""
    return _audited_order(
        "order.fulfilled", lambda session, now: services.fulfil_order(session, None, order_id, now)
    )


@bp.route("/ops/vouchers/<code>/accept", methods=["POST"])
@require("operator", kinds=OPERATOR)
@bp.response(200, schemas.SupplierOrderOut)
@bp.alt_response(409, description="Accepted before, or its order was cancelled.")
def accept_operator_voucher(code: str) -> Any:
    """The operator accepts one of its own vouchers, once. A merchant's voucher: `404`."""
    return _audited_order(
        "voucher.accepted", lambda session, now: services.accept_voucher(session, None, code, now)
    )


def _audited_order(action: str, change: Callable[[Session, datetime], OrderView]) -> Any:
    """The operator's `change` to one of its orders, written to the audit log as `action`."""
    session, now = db.session(), clock.utcnow()

    def run() -> tuple[int, dict[str, Any]]:
        order = change(session, now)
        audit.record(
            session,
            operator_actor(),
            action,
            "order",
            order.id,
            after={"status": order.status},
            now=now,
        )
        return 200, _supplier_order(order)

    return idempotent(run)
