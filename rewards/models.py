"""The catalogue's tables (SPEC 2, Rewards catalogue):

- `rewards`: one listing of a supplier, a partner merchant (`merchant_id`) or the operator
  (`merchant_id` NULL): kind, points price, optional cost price in minor units of the
  coalition's currency, stock (NULL: unlimited), validity, promised fulfilment days, category,
  description. The catalogue is public to every member and partner, so row-level security lets
  anyone read a listing and only its supplier (or the operator) write it.
- `reward_images`: a listing's one image, its bytes checked and kept in the database (served by
  the app, so no file store is needed).
- `orders`: a member's order of a reward, paid by a redemption at the supplier
  (`transaction_id`); `pending` until the supplier fulfils it (a voucher: until its till accepts
  the code), or `cancelled` (by the member, or by the nightly job once `due_at` has passed),
  when a reversal (`reversal_id`) gives the points back to their lots. The cost price is kept as
  it was when ordered (`cost_price_minor`, for the whole quantity), so settlement can reimburse
  the supplier at it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from coalition.database import BigId, UTCDateTime, table
from coalition.extensions import Base

KINDS = ("gift", "voucher", "experience")
ORDER_STATUSES = ("pending", "fulfilled", "cancelled")
# Who cancelled: the member, or the nightly job once the promised days had passed.
CANCELLED_BY = ("member", "expiry")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")


class Reward(Base):
    __tablename__ = "rewards"
    __table_args__ = (
        CheckConstraint("kind IN ('gift', 'voucher', 'experience')", name="kind_known"),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("stock IS NULL OR stock >= 0", name="stock_not_negative"),
        CheckConstraint(
            "cost_price_minor IS NULL OR cost_price_minor >= 0", name="cost_price_not_negative"
        ),
        CheckConstraint("fulfilment_days >= 0", name="fulfilment_days_not_negative"),
        Index("ix_rewards_merchant", "merchant_id", "id"),
        Index("ix_rewards_category", "category", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    # The supplier: a partner merchant, or NULL for the operator.
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(12))
    points: Mapped[int] = mapped_column(BigId)
    cost_price_minor: Mapped[int | None] = mapped_column(BigId)
    currency: Mapped[str | None] = mapped_column(String(3))
    stock: Mapped[int | None] = mapped_column(BigId)
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    fulfilment_days: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RewardImage(Base):
    __tablename__ = "reward_images"
    __table_args__ = (
        CheckConstraint(
            "content_type IN ('image/png', 'image/jpeg', 'image/webp')", name="content_type_known"
        ),
    )

    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"), primary_key=True)
    # The supplier again, for row-level security on writes.
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    content_type: Mapped[str] = mapped_column(String(20))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # SHA-256 of the bytes: the image's ETag.
    digest: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'fulfilled', 'cancelled')", name="status_known"),
        CheckConstraint(
            "cancelled_by IS NULL OR cancelled_by IN ('member', 'expiry')",
            name="cancelled_by_known",
        ),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("points > 0", name="points_positive"),
        Index("ix_orders_merchant", "merchant_id", "id"),
        Index("ix_orders_member_account", "member_account_id", "id"),
        Index("ix_orders_transaction", "transaction_id"),
        # What the nightly job looks for: pending orders by the time they are due.
        Index(
            "ix_orders_pending_due",
            "due_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"))
    # The supplier (the reward's), NULL for the operator: routing, tenancy, settlement.
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    member_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(BigId)
    cost_price_minor: Mapped[int | None] = mapped_column(BigId)
    currency: Mapped[str | None] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(12), default="pending")
    # A voucher's code: 16 Crockford base-32 characters (80 random bits), kept without dashes.
    voucher_code: Mapped[str | None] = mapped_column(String(16), unique=True)
    voucher_accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The redemption that paid for it, and the reversal of it if cancelled.
    transaction_id: Mapped[int] = mapped_column(ForeignKey("transactions.id"))
    reversal_id: Mapped[int | None] = mapped_column(ForeignKey("transactions.id"))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_by: Mapped[str | None] = mapped_column(String(12))


rewards = table(Reward)
reward_images = table(RewardImage)
orders = table(Order)

__all__: list[Any] = ["Order", "Reward", "RewardImage", "orders", "reward_images", "rewards"]
