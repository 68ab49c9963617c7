"""The catalogue's operations (SPEC 2, Rewards catalogue), in the domain's words: list and change
a reward, give it its image; order one with points, cancel, fulfil, accept a voucher; cancel what
was not fulfilled in time. Each works in the caller's transaction and the caller commits.

- Stock is never oversold: an order takes its quantity with one conditional UPDATE
  (`stock >= quantity`), which on PostgreSQL waits for a concurrent order's and re-reads the
  row, so of many members ordering the last item exactly one gets it.
- Locks are taken in one order everywhere: the order row, then the reward, then the member's
  account (inside the ledger).
- An order is a redemption at the supplier, and a cancel its reversal, which gives the points
  back to the very lots they came from. Both go through `_pay` and `_give_back`, the only
  places that call the ledger.
- Orders, fulfilments and vouchers cross tenants (a member ordering through one merchant's app
  from another's listing), so they run as the system tenant; every check of who may act is
  made here, before anything is written."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from coalition import economics, outbox, tenancy
from coalition.errors import CoalitionError, InvalidRequest, NotFound
from coalition.ids import is_public_id, new_id
from coalition.ledger import operations
from coalition.ledger.accounts import MemberAccount, lock_member
from coalition.ledger.rows import Actor
from coalition.members.services import member_by_id
from rewards import images, reads, vouchers
from rewards.models import KINDS, orders, reward_images, rewards
from rewards.reads import OrderView, RewardView, Supplier, of_supplier

MAX_QUANTITY = 10
MAX_FULFILMENT_DAYS = 365
MAX_NAME, MAX_CATEGORY, MAX_DESCRIPTION = 120, 60, 2000
MAX_POINTS = 10**9
MAX_STOCK = 10**9


class RewardUnavailable(CoalitionError):
    status, code, title = 409, "reward_unavailable", "The reward cannot be ordered"


class OutOfStock(CoalitionError):
    status, code, title = 409, "out_of_stock", "Not enough of the reward left"


class OrderNotPending(CoalitionError):
    status, code, title = 409, "order_not_pending", "The order is fulfilled or cancelled"


class VoucherAlreadyAccepted(CoalitionError):
    status, code, title = 409, "voucher_already_accepted", "The voucher was accepted before"


class VoucherOrder(CoalitionError):
    status, code, title = 409, "voucher_order", "A voucher is fulfilled at the till"


@contextmanager
def _as_system(session: Session) -> Iterator[None]:
    with tenancy.acting_as(tenancy.SYSTEM, session):
        yield


# Listings -------------------------------------------------------------------------------------

EDITABLE = (
    "name",
    "kind",
    "points",
    "cost_price",
    "stock",
    "valid_from",
    "valid_until",
    "fulfilment_days",
    "category",
    "description",
)


def _invalid(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{field}: {message}", errors={field: [message]})


def _text(values: Mapping[str, Any], field: str, limit: int, *, required: bool) -> str:
    raw = str(values.get(field) or "")
    # A name or a category is one line; a description keeps its lines.
    value = raw.strip() if field == "description" else " ".join(raw.split())
    if required and not value:
        raise _invalid(field, "required")
    if len(value) > limit:
        raise _invalid(field, f"at most {limit} characters")
    return value


def _columns(session: Session, values: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The columns of a listing from its fields (all of them, as a PUT gives), checked."""
    kind = values.get("kind")
    if kind not in KINDS:
        raise _invalid("kind", f"one of {', '.join(KINDS)}")
    points = values.get("points")
    if not isinstance(points, int) or isinstance(points, bool) or not 0 < points <= MAX_POINTS:
        raise _invalid("points", f"a whole number from 1 to {MAX_POINTS}")
    stock = values.get("stock")
    if stock is not None and (
        not isinstance(stock, int) or isinstance(stock, bool) or not 0 <= stock <= MAX_STOCK
    ):
        raise _invalid("stock", f"a whole number from 0 to {MAX_STOCK}, or null for unlimited")
    days = values.get("fulfilment_days")
    if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= MAX_FULFILMENT_DAYS:
        raise _invalid("fulfilment_days", f"a whole number from 0 to {MAX_FULFILMENT_DAYS}")
    valid_from, valid_until = values.get("valid_from"), values.get("valid_until")
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise _invalid("valid_until", "after valid_from")
    cost, currency = None, None
    if values.get("cost_price") is not None:
        cost, currency = values["cost_price"]["amount"], values["cost_price"]["currency"]
        wanted = economics.terms_at(now, session=session).currency
        if currency != wanted:
            # SPEC 2: one settlement currency per coalition.
            raise _invalid("cost_price", f"in the coalition's currency, {wanted}")
        if not isinstance(cost, int) or isinstance(cost, bool) or not 0 <= cost <= 10**12:
            raise _invalid("cost_price", "an amount in minor units from 0")
    return {
        "name": _text(values, "name", MAX_NAME, required=True),
        "kind": kind,
        "points": points,
        "cost_price_minor": cost,
        "currency": currency,
        "stock": stock,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "fulfilment_days": days,
        "category": _text(values, "category", MAX_CATEGORY, required=True).lower(),
        "description": _text(values, "description", MAX_DESCRIPTION, required=False),
    }


def create_reward(
    session: Session, supplier: Supplier, values: Mapping[str, Any], now: datetime
) -> RewardView:
    """A new listing of `supplier` (a merchant, or None: the operator)."""
    columns = _columns(session, values, now)
    public_id = new_id(reads.REWARD_PREFIX)
    session.execute(
        rewards.insert().values(
            public_id=public_id, merchant_id=supplier, created_at=now, updated_at=now, **columns
        )
    )
    return reads.reward(session, public_id)


def update_reward(
    session: Session, supplier: Supplier, public_id: str, values: Mapping[str, Any], now: datetime
) -> RewardView:
    """Replace the listing's fields (a PUT: every field given). Orders placed keep the price
    and cost price they were placed at."""
    row = reads.supplier_reward_row(session, supplier, public_id)
    columns = _columns(session, values, now)
    session.execute(update(rewards).where(rewards.c.id == row.id).values(updated_at=now, **columns))
    return reads.reward(session, public_id)


def set_image(
    session: Session, supplier: Supplier, public_id: str, data: bytes, now: datetime
) -> RewardView:
    """Give the listing its one image (replacing any before), once its bytes pass
    `images.check`."""
    checked = images.check(data)
    row = reads.supplier_reward_row(session, supplier, public_id)
    session.execute(reward_images.delete().where(reward_images.c.reward_id == row.id))
    session.execute(
        reward_images.insert().values(
            reward_id=row.id,
            merchant_id=supplier,
            content_type=checked.content_type,
            width=checked.width,
            height=checked.height,
            digest=hashlib.sha256(checked.data).hexdigest(),
            data=checked.data,
            uploaded_at=now,
        )
    )
    session.execute(update(rewards).where(rewards.c.id == row.id).values(updated_at=now))
    return reads.reward(session, public_id)


# The ledger -----------------------------------------------------------------------------------


def _pay(
    session: Session,
    *,
    supplier: Supplier,
    member_id: int,
    points: int,
    order_public_id: str,
    actor: Actor,
    now: datetime,
    locked: MemberAccount,
) -> int:
    """The order's redemption at its supplier (SPEC 2: the redeemer is the supplier, so
    settlement reimburses it; the operator when None), marked `purpose="order"` so settlement
    tells it from a till's redemption; its transaction's row id. The ledger writes no
    `redemption.created` for it: the order announces itself (`order.created`)."""
    done = operations.redeem(
        session,
        member_id=member_id,
        merchant_id=supplier,
        points=points,
        actor=actor,
        now=now,
        external_id=order_public_id,
        reason="order",
        locked=locked,
        purpose="order",
    )
    return _transaction_id(session, done["transaction"]["id"])


def _give_back(
    session: Session, *, supplier: Supplier, redemption_id: int, actor: Actor, now: datetime
) -> int:
    """The reversal of an order's redemption: its points go back to the lots they came from
    (the reversal keeps the purpose, and announces nothing: `order.cancelled` does)."""
    public_id = _transaction_public_id(session, redemption_id)
    done = operations.reverse_redemption(
        session,
        redemption_id=public_id,
        merchant_id=supplier,
        actor=actor,
        now=now,
        reason="order cancelled",
    )
    return _transaction_id(session, done["transaction"]["id"])


def _transaction_id(session: Session, public_id: str) -> int:
    transactions = operations.transactions
    return int(
        session.execute(
            select(transactions.c.id).where(transactions.c.public_id == public_id)
        ).scalar_one()
    )


def _transaction_public_id(session: Session, transaction_id: int) -> str:
    transactions = operations.transactions
    return str(
        session.execute(
            select(transactions.c.public_id).where(transactions.c.id == transaction_id)
        ).scalar_one()
    )


# Orders ---------------------------------------------------------------------------------------


def _event(session: Session, type: str, order: OrderView, now: datetime, member_id: int) -> None:
    """An order's event, routed to its supplier (SPEC 3.6): what `GET /api/v1/orders` shows."""
    supplier = session.execute(
        select(orders.c.merchant_id).where(orders.c.public_id == order.id)
    ).scalar_one()
    data = order.for_supplier()
    outbox.emit(
        session, type, {"order": _jsonable(data)}, now, merchant_id=supplier, member_id=member_id
    )


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}


def place_order(
    session: Session,
    *,
    member_id: int,
    reward_id: str,
    quantity: int,
    now: datetime,
) -> OrderView:
    """A member orders `quantity` of a reward with points: the stock taken, the points
    redeemed at the supplier, a voucher's code made. Refused, with nothing written:
    `not_found`, `reward_unavailable` (outside its dates, a suspended supplier),
    `out_of_stock`, `insufficient_points`."""
    if not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise _invalid("quantity", f"a whole number from 1 to {MAX_QUANTITY}")
    with _as_system(session):
        member = member_by_id(session, member_id)
        row = reads.reward_row(session, reward_id)
        view = reads.reward_view(row)
        if row.kind == "voucher" and quantity != 1:
            raise _invalid("quantity", "a voucher is ordered one at a time")
        if not (
            (view.valid_from is None or view.valid_from <= now)
            and (view.valid_until is None or now < view.valid_until)
        ):
            raise RewardUnavailable("the reward is not offered at this time")
        if row.merchant_id is not None and not _supplier_active(session, row.merchant_id):
            raise RewardUnavailable("the reward's supplier is not taking orders")
        taken = session.execute(
            update(rewards)
            .where(
                rewards.c.id == row.id,
                (rewards.c.stock.is_(None)) | (rewards.c.stock >= quantity),
            )
            .values(stock=rewards.c.stock - quantity)
            .returning(rewards.c.points, rewards.c.cost_price_minor, rewards.c.currency)
        ).one_or_none()
        if taken is None:
            raise OutOfStock("not enough of this reward is left")
        points = taken.points * quantity
        public_id = new_id(reads.ORDER_PREFIX)
        account = lock_member(session, member.id)
        transaction_id = _pay(
            session,
            supplier=row.merchant_id,
            member_id=member.id,
            points=points,
            order_public_id=public_id,
            actor=Actor("member", member.public_id),
            now=now,
            locked=account,
        )
        session.execute(
            orders.insert().values(
                public_id=public_id,
                reward_id=row.id,
                merchant_id=row.merchant_id,
                member_id=member.id,
                member_account_id=account.id,
                quantity=quantity,
                points=points,
                cost_price_minor=None
                if taken.cost_price_minor is None
                else taken.cost_price_minor * quantity,
                currency=taken.currency,
                status="pending",
                voucher_code=vouchers.new_code() if row.kind == "voucher" else None,
                transaction_id=transaction_id,
                due_at=now + timedelta(days=row.fulfilment_days),
                created_at=now,
            )
        )
        order = reads.member_order(session, account.id, public_id)
        _event(session, "order.created", order, now, member.id)
    return order


def _supplier_active(session: Session, merchant_id: int) -> bool:
    merchants = reads.merchants_table()
    status = session.execute(
        select(merchants.c.status).where(merchants.c.id == merchant_id)
    ).scalar_one_or_none()
    return status == "active"


def _lock_order(session: Session, condition: Any, public_id: str) -> Any:
    if not is_public_id(public_id, reads.ORDER_PREFIX):
        raise NotFound("no such order")
    row = session.execute(
        select(orders).where(orders.c.public_id == public_id, condition).with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFound("no such order")
    return row


def _cancel(session: Session, row: Any, by: str, now: datetime) -> OrderView:
    """Cancel a pending order (locked): its stock back, its points back to their lots."""
    if row.status != "pending":
        raise OrderNotPending(f"the order is {row.status}; only a pending order can be cancelled")
    session.execute(
        update(rewards)
        .where(rewards.c.id == row.reward_id, rewards.c.stock.is_not(None))
        .values(stock=rewards.c.stock + row.quantity)
    )
    actor = Actor("job", "cancel-overdue-orders") if by == "expiry" else None
    if actor is None:
        member = session.execute(
            select(reads.members.c.public_id).where(reads.members.c.id == row.member_id)
        ).scalar_one()
        actor = Actor("member", member)
    reversal_id = _give_back(
        session, supplier=row.merchant_id, redemption_id=row.transaction_id, actor=actor, now=now
    )
    session.execute(
        update(orders)
        .where(orders.c.id == row.id)
        .values(status="cancelled", cancelled_at=now, cancelled_by=by, reversal_id=reversal_id)
    )
    order = reads.order_by_id(session, row.id)
    _event(session, "order.cancelled", order, now, row.member_id)
    return order


def cancel_order(
    session: Session, *, member_account_id: int, order_id: str, now: datetime
) -> OrderView:
    """The member cancels its pending order: `order_not_pending` once fulfilled or cancelled;
    another member's order is `not_found`."""
    with _as_system(session):
        row = _lock_order(session, orders.c.member_account_id == member_account_id, order_id)
        return _cancel(session, row, "member", now)


def fulfil_order(session: Session, supplier: Supplier, order_id: str, now: datetime) -> OrderView:
    """The supplier has delivered the order. A voucher is fulfilled by its acceptance at the
    till instead (`voucher_order`); another supplier's order is `not_found`."""
    with _as_system(session):
        row = _lock_order(session, of_supplier(orders.c.merchant_id, supplier), order_id)
        if row.voucher_code is not None:
            raise VoucherOrder("a voucher's order is fulfilled when the till accepts its code")
        if row.status != "pending":
            raise OrderNotPending(f"the order is {row.status}; only a pending one is fulfilled")
        session.execute(
            update(orders).where(orders.c.id == row.id).values(status="fulfilled", fulfilled_at=now)
        )
        order = reads.order_by_id(session, row.id)
        _event(session, "order.fulfilled", order, now, row.member_id)
    return order


def accept_voucher(
    session: Session, supplier: Supplier, typed_code: str, now: datetime
) -> OrderView:
    """The supplier's till accepts a voucher, once: that fulfils its order. A second time is
    `voucher_already_accepted`; a cancelled order's is `order_not_pending`; a code of another
    supplier's, or none at all, is `not_found`."""
    code = vouchers.normalise(typed_code)
    if code is None:
        raise NotFound("no such voucher")
    with _as_system(session):
        # One conditional UPDATE: of tills accepting one code at once, exactly one changes it.
        accepted = session.execute(
            update(orders)
            .where(
                orders.c.voucher_code == code,
                of_supplier(orders.c.merchant_id, supplier),
                orders.c.status == "pending",
            )
            .values(status="fulfilled", fulfilled_at=now, voucher_accepted_at=now)
            .returning(orders.c.id, orders.c.member_id)
        ).one_or_none()
        if accepted is None:
            status = session.execute(
                select(orders.c.status).where(
                    orders.c.voucher_code == code, of_supplier(orders.c.merchant_id, supplier)
                )
            ).scalar_one_or_none()
            if status is None:
                raise NotFound("no such voucher")
            if status == "fulfilled":
                raise VoucherAlreadyAccepted("this voucher was accepted before")
            raise OrderNotPending("this voucher's order was cancelled")
        order = reads.order_by_id(session, accepted.id)
        _event(session, "voucher.accepted", order, now, accepted.member_id)
        _event(session, "order.fulfilled", order, now, accepted.member_id)
    return order


def cancel_overdue(session: Session, *, cutoff: datetime, now: datetime, limit: int) -> int:
    """Cancel up to `limit` pending orders due by `cutoff` (SPEC 2: not fulfilled within the
    promised days), each giving its points back; returns how many. Each is locked and checked
    again, so a concurrent fulfilment or a rerun changes nothing twice."""
    with _as_system(session):
        due = session.execute(
            select(orders.c.public_id)
            .where(orders.c.status == "pending", orders.c.due_at <= cutoff)
            .order_by(orders.c.due_at, orders.c.id)
            .limit(limit)
        ).scalars()
        done = 0
        for public_id in list(due):
            row = _lock_order(session, orders.c.public_id == public_id, public_id)
            if row.status == "pending":  # not fulfilled meanwhile
                _cancel(session, row, "expiry", now)
                done += 1
    return done
