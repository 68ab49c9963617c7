"""Questions about the catalogue and its orders, answered without writing: one listing, a
supplier's own listings, the members' catalogue with its filters, one order as its member or
its supplier may see it, and the lists of each. A supplier is a merchant's id, or None for the
operator. Another supplier's listing or order is `not_found`, exactly as one that does not
exist (SPEC 3.2)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, or_, select
from sqlalchemy.orm import Session

from coalition import economics
from coalition.errors import NotFound
from coalition.extensions import Base
from coalition.ids import is_public_id
from coalition.ledger.reads import members
from rewards import vouchers
from rewards.models import orders, reward_images, rewards

REWARD_PREFIX, ORDER_PREFIX = "rwd", "ord"
REWARD_ID, ORDER_ID = rewards.c.id, orders.c.id
Supplier = int | None  # a merchant's id, or None: the operator


def merchants_table() -> Table:
    """The coalition's directory of merchants (`merchants.models`, which this package does not
    import: merchants' portal imports it), looked up once every model is loaded."""
    return Base.metadata.tables["merchants"]


def of_supplier(column: Any, supplier: Supplier) -> ColumnElement[bool]:
    return column.is_(None) if supplier is None else column == supplier


@dataclass(frozen=True)
class RewardView:
    id: str
    name: str
    kind: str
    points: int
    cost_price: dict[str, Any] | None
    stock: int | None
    valid_from: datetime | None
    valid_until: datetime | None
    fulfilment_days: int
    category: str
    description: str
    supplier: dict[str, Any]
    has_image: bool
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def orderable(self, now: datetime) -> bool:
        return (
            (self.valid_from is None or self.valid_from <= now)
            and (self.valid_until is None or now < self.valid_until)
            and (self.stock is None or self.stock > 0)
        )

    def cost_price_decimal(self) -> Decimal | None:
        if self.cost_price is None:
            return None
        digits = economics.MINOR_UNIT_DIGITS[self.cost_price["currency"]]
        return Decimal(self.cost_price["amount"]).scaleb(-digits)


def _reward_columns(merchants: Table) -> tuple[Any, ...]:
    return (
        rewards.c.id,
        rewards.c.public_id,
        rewards.c.merchant_id,
        rewards.c.name,
        rewards.c.kind,
        rewards.c.points,
        rewards.c.cost_price_minor,
        rewards.c.currency,
        rewards.c.stock,
        rewards.c.valid_from,
        rewards.c.valid_until,
        rewards.c.fulfilment_days,
        rewards.c.category,
        rewards.c.description,
        rewards.c.updated_at,
        merchants.c.public_id.label("supplier_public_id"),
        merchants.c.name.label("supplier_name"),
        reward_images.c.reward_id.label("image_of"),
    )


def _rewards() -> Select[Any]:
    merchants = merchants_table()
    return (
        select(*_reward_columns(merchants))
        .select_from(rewards)
        .outerjoin(merchants, merchants.c.id == rewards.c.merchant_id)
        .outerjoin(reward_images, reward_images.c.reward_id == rewards.c.id)
    )


def reward_view(row: Any) -> RewardView:
    cost = (
        None
        if row.cost_price_minor is None
        else {"amount": row.cost_price_minor, "currency": row.currency}
    )
    return RewardView(
        id=row.public_id,
        name=row.name,
        kind=row.kind,
        points=row.points,
        cost_price=cost,
        stock=row.stock,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        fulfilment_days=row.fulfilment_days,
        category=row.category,
        description=row.description,
        supplier={
            "id": row.supplier_public_id,
            "name": row.supplier_name if row.merchant_id is not None else None,
        },
        has_image=row.image_of is not None,
        updated_at=row.updated_at,
    )


def reward_row(session: Session, public_id: str) -> Any:
    """Any listing, by its id (the members' catalogue); `not_found` otherwise."""
    if not is_public_id(public_id, REWARD_PREFIX):
        raise NotFound("no such reward")
    row = session.execute(_rewards().where(rewards.c.public_id == public_id)).one_or_none()
    if row is None:
        raise NotFound("no such reward")
    return row


def supplier_reward_row(session: Session, supplier: Supplier, public_id: str) -> Any:
    """The supplier's own listing; another's is `not_found`."""
    row = reward_row(session, public_id)
    if row.merchant_id != supplier:
        raise NotFound("no such reward")
    return row


def reward(session: Session, public_id: str) -> RewardView:
    return reward_view(reward_row(session, public_id))


def own_rewards(supplier: Supplier) -> Select[Any]:
    """The supplier's listings, for `paginate` (newest first)."""
    return _rewards().where(of_supplier(rewards.c.merchant_id, supplier))


def all_rewards() -> Select[Any]:
    """Every listing, whoever supplies it (the operator's pages)."""
    return _rewards()


def catalogue(
    now: datetime,
    *,
    category: str | None = None,
    supplier: str | None = None,
    min_points: int | None = None,
    max_points: int | None = None,
) -> Select[Any]:
    """What members may order now: listings in their validity window, from the operator or an
    active partner, with stock left. `supplier`: a merchant's `mer_` id, or `operator`."""
    merchants = merchants_table()
    query = _rewards().where(
        or_(rewards.c.valid_from.is_(None), rewards.c.valid_from <= now),
        or_(rewards.c.valid_until.is_(None), rewards.c.valid_until > now),
        or_(rewards.c.stock.is_(None), rewards.c.stock > 0),
        or_(rewards.c.merchant_id.is_(None), merchants.c.status == "active"),
    )
    if category is not None:
        query = query.where(rewards.c.category == category)
    if supplier == "operator":
        query = query.where(rewards.c.merchant_id.is_(None))
    elif supplier is not None:
        query = query.where(
            and_(rewards.c.merchant_id.is_not(None), merchants.c.public_id == supplier)
        )
    if min_points is not None:
        query = query.where(rewards.c.points >= min_points)
    if max_points is not None:
        query = query.where(rewards.c.points <= max_points)
    return query


def categories(session: Session, now: datetime) -> list[str]:
    """The categories of what may be ordered now, for the catalogue's filter."""
    query = catalogue(now).with_only_columns(rewards.c.category).distinct()
    return sorted(session.execute(query).scalars())


def suppliers(session: Session, now: datetime) -> list[tuple[str, str]]:
    """(`mer_` id, name) of the partners with something to order now."""
    merchants = merchants_table()
    query = (
        catalogue(now)
        .where(rewards.c.merchant_id.is_not(None))
        .with_only_columns(merchants.c.public_id, merchants.c.name)
        .distinct()
    )
    return sorted(((r.public_id, r.name) for r in session.execute(query)), key=lambda s: s[1])


@dataclass(frozen=True)
class Image:
    content_type: str
    digest: str
    data: bytes


def image(session: Session, public_id: str) -> Image:
    if not is_public_id(public_id, REWARD_PREFIX):
        raise NotFound("no such image")
    row = session.execute(
        select(reward_images.c.content_type, reward_images.c.digest, reward_images.c.data)
        .join(rewards, rewards.c.id == reward_images.c.reward_id)
        .where(rewards.c.public_id == public_id)
    ).one_or_none()
    if row is None:
        raise NotFound("no such image")
    return Image(row.content_type, row.digest, bytes(row.data))


# Orders ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderView:
    id: str
    reward: str
    reward_name: str
    kind: str
    status: str
    quantity: int
    points: int
    voucher_code: str | None
    voucher_accepted_at: datetime | None
    member: str
    supplier: dict[str, Any]
    created_at: datetime
    due_at: datetime
    fulfilled_at: datetime | None
    cancelled_at: datetime | None
    cancelled_by: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def for_member(self) -> dict[str, Any]:
        """What its member sees: everything but its own id again."""
        shown = self.as_dict()
        shown.pop("member")
        if self.voucher_code is None:
            shown.pop("voucher_code")
        return shown

    def for_supplier(self) -> dict[str, Any]:
        """What the supplier sees: never the voucher's code, which the member brings to the
        till (a code on the supplier's screen could be accepted without the member)."""
        shown = self.as_dict()
        shown.pop("voucher_code")
        return shown

    @property
    def cancellable(self) -> bool:
        return self.status == "pending"


def _order_columns(merchants: Table) -> tuple[Any, ...]:
    return (
        orders.c.id,
        orders.c.public_id,
        orders.c.merchant_id,
        orders.c.member_account_id,
        orders.c.quantity,
        orders.c.points,
        orders.c.status,
        orders.c.voucher_code,
        orders.c.voucher_accepted_at,
        orders.c.created_at,
        orders.c.due_at,
        orders.c.fulfilled_at,
        orders.c.cancelled_at,
        orders.c.cancelled_by,
        rewards.c.public_id.label("reward_public_id"),
        rewards.c.name.label("reward_name"),
        rewards.c.kind,
        members.c.public_id.label("member_public_id"),
        merchants.c.public_id.label("supplier_public_id"),
        merchants.c.name.label("supplier_name"),
    )


def _orders() -> Select[Any]:
    merchants = merchants_table()
    return (
        select(*_order_columns(merchants))
        .select_from(orders)
        .join(rewards, rewards.c.id == orders.c.reward_id)
        .join(members, members.c.id == orders.c.member_id)
        .outerjoin(merchants, merchants.c.id == orders.c.merchant_id)
    )


def order_view(row: Any) -> OrderView:
    return OrderView(
        id=row.public_id,
        reward=row.reward_public_id,
        reward_name=row.reward_name,
        kind=row.kind,
        status=row.status,
        quantity=row.quantity,
        points=row.points,
        voucher_code=None if row.voucher_code is None else vouchers.shown(row.voucher_code),
        voucher_accepted_at=row.voucher_accepted_at,
        member=row.member_public_id,
        supplier={
            "id": row.supplier_public_id,
            "name": row.supplier_name if row.merchant_id is not None else None,
        },
        created_at=row.created_at,
        due_at=row.due_at,
        fulfilled_at=row.fulfilled_at,
        cancelled_at=row.cancelled_at,
        cancelled_by=row.cancelled_by,
    )


def _order_row(session: Session, public_id: str, condition: ColumnElement[bool]) -> Any:
    if not is_public_id(public_id, ORDER_PREFIX):
        raise NotFound("no such order")
    row = session.execute(_orders().where(orders.c.public_id == public_id, condition)).one_or_none()
    if row is None:
        raise NotFound("no such order")
    return row


def member_order(session: Session, member_account_id: int, public_id: str) -> OrderView:
    return order_view(
        _order_row(session, public_id, orders.c.member_account_id == member_account_id)
    )


def supplier_order(session: Session, supplier: Supplier, public_id: str) -> OrderView:
    return order_view(_order_row(session, public_id, of_supplier(orders.c.merchant_id, supplier)))


def order_by_id(session: Session, order_id: int) -> OrderView:
    return order_view(session.execute(_orders().where(orders.c.id == order_id)).one())


def member_orders(member_account_id: int) -> Select[Any]:
    return _orders().where(orders.c.member_account_id == member_account_id)


def supplier_orders(supplier: Supplier, status: str | None = None) -> Select[Any]:
    query = _orders().where(of_supplier(orders.c.merchant_id, supplier))
    if status is not None:
        query = query.where(orders.c.status == status)
    return query


def recent(session: Session, query: Select[Any], id_column: Any, limit: int = 100) -> list[Any]:
    """The newest `limit` rows of a list (the pages show one screen of each)."""
    return list(session.execute(query.order_by(id_column.desc()).limit(limit)).all())


def page(
    session: Session, query: Select[Any], id_column: Any, number: int, size: int
) -> tuple[list[Any], bool]:
    """One numbered page of a list, newest first, and whether another follows (the pages'
    lists; the API pages by cursor)."""
    rows = session.execute(
        query.order_by(id_column.desc()).limit(size + 1).offset((number - 1) * size)
    ).all()
    return list(rows[:size]), len(rows) > size
