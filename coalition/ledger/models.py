"""The ledger's tables.

A transfer is one debit, one credit and one amount, so the ledger balances by construction. Only
member accounts carry a balance (the one row a purchase updates); merchant and operator balances
are derived by aggregation, never kept, so no shared row serialises the coalition's traffic.
Transactions, transfers and lot consumptions are immutable: the database refuses UPDATE, DELETE
and TRUNCATE on them (see the first migration)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from coalition.database import BigId, Json, UTCDateTime
from coalition.extensions import Base

ACCOUNT_KINDS = ("member", "merchant", "operator")
TRANSACTION_TYPES = ("earn", "redeem", "refund", "reversal", "expiry")
# What a redemption (and its reversal) paid for, besides a discount at a till (NULL): a reward
# ordered from the catalogue, an entry to a prize draw.
TRANSACTION_PURPOSES = ("order", "draw_entry")
TRANSFER_KINDS = ("award", "redeem", "clawback", "reverse", "expire")
LOT_SOURCES = ("merchant", "tier", "welcome")
# `cancel`: a refund's clawback taking points from a lot still pending (no money moves for them);
# `confirm`: a pending lot confirmed, its points from then on issued and spendable (it takes
# nothing from the lot: settlement counts its points as issued on the day it is dated).
CONSUMPTION_KINDS = (
    "redeem",
    "clawback",
    "expire",
    "restore",
    "debt",
    "repay",
    "cancel",
    "confirm",
)
HOLD_STATUSES = ("active", "captured", "voided")
# A lot still in its pending window (SQL, for partial indexes).
PENDING_SQL = "pending_until IS NOT NULL AND confirmed_at IS NULL"


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint(_one_of("kind", ACCOUNT_KINDS), name="kind"),
        CheckConstraint(
            "(kind = 'member' AND member_id IS NOT NULL AND merchant_id IS NULL)"
            " OR (kind = 'merchant' AND merchant_id IS NOT NULL AND member_id IS NULL)"
            " OR (kind = 'operator' AND member_id IS NULL AND merchant_id IS NULL)",
            name="owner",
        ),
        # SPEC 2: a balance is never negative, except by clawback debt.
        CheckConstraint("debt >= 0 AND balance + debt >= 0", name="balance_covers_debt"),
        # Merchant and operator balances are derived, never kept on the row.
        CheckConstraint(
            "kind = 'member' OR (balance = 0 AND debt = 0)", name="balance_member_only"
        ),
        # Pending points are part of the balance (its open lots), never more than them.
        CheckConstraint(
            "pending >= 0 AND pending <= balance + debt AND (kind = 'member' OR pending = 0)",
            name="pending_within_balance",
        ),
        Index(
            "uq_accounts_one_operator",
            "kind",
            unique=True,
            sqlite_where=text("kind = 'operator'"),
            postgresql_where=text("kind = 'operator'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), unique=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), unique=True)
    balance: Mapped[int] = mapped_column(BigId, default=0, server_default="0")
    # Points a clawback could not find in any lot; repaid by later awards before they can be spent.
    debt: Mapped[int] = mapped_column(BigId, default=0, server_default="0")
    # SPEC 2: the welcome bonus comes with a member's first purchase anywhere, once.
    welcomed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # SPEC 2, Pending points: the points of the member's lots still in their pending window,
    # counted in `balance` but not spendable until the nightly job confirms them.
    pending: Mapped[int] = mapped_column(BigId, default=0, server_default="0")


class Transaction(Base):
    """The business event a set of transfers belongs to: a purchase's earn, a redemption, a refund,
    a reversal, an expiry. It says why (reason) and who caused it (actor)."""

    __tablename__ = "transactions"
    __table_args__ = (
        CheckConstraint(_one_of("type", TRANSACTION_TYPES), name="type"),
        CheckConstraint(
            "purpose IS NULL OR (type IN ('redeem', 'reversal')"
            f" AND {_one_of('purpose', TRANSACTION_PURPOSES)})",
            name="purpose",
        ),
        CheckConstraint("points >= 0", name="points"),
        UniqueConstraint("merchant_id", "type", "external_id", name="uq_transactions_external_id"),
        # L4: a transaction is reversed at most once, whatever the application does.
        Index(
            "uq_transactions_one_reversal",
            "original_id",
            unique=True,
            sqlite_where=text("type = 'reversal'"),
            postgresql_where=text("type = 'reversal'"),
        ),
        Index("ix_transactions_member_created", "member_account_id", "created_at"),
        Index("ix_transactions_merchant_created", "merchant_id", "created_at"),
        Index("ix_transactions_original", "original_id"),
        # Settlement reads each day's refunds; only refunds carry the index's cost.
        Index(
            "ix_transactions_refunds_created",
            "created_at",
            sqlite_where=text("type = 'refund'"),
            postgresql_where=text("type = 'refund'"),
        ),
        # Settlement reads each day's orders and draw entries (and their reversals) to price
        # them as their own lines; only such transactions carry the index's cost.
        Index(
            "ix_transactions_purpose_created",
            "created_at",
            sqlite_where=text("purpose IS NOT NULL"),
            postgresql_where=text("purpose IS NOT NULL"),
        ),
        # Insights (issue 16) read a merchant's purchases in a range from this index alone.
        Index(
            "ix_transactions_purchases_merchant",
            "merchant_id",
            "created_at",
            "member_account_id",
            "amount_minor",
            "points",
            sqlite_where=text("type = 'earn'"),
            postgresql_where=text("type = 'earn'"),
        ),
        # API pages walk one member's or one merchant's transactions by id, newest first.
        Index("ix_transactions_member_page", "member_account_id", "id"),
        Index("ix_transactions_merchant_page", "merchant_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    member_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    external_id: Mapped[str | None] = mapped_column(String(200))
    points: Mapped[int] = mapped_column(BigId)
    amount_minor: Mapped[int | None] = mapped_column(BigId)
    currency: Mapped[str | None] = mapped_column(String(3))
    original_id: Mapped[int | None] = mapped_column(ForeignKey("transactions.id"))
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("holds.id"))
    breakdown: Mapped[dict[str, Any] | None] = mapped_column(Json)
    # A refund: of its merchant-funded points clawed back, how many the member had already
    # redeemed, so the issuer had paid for them (SPEC 2: settlement credits only those).
    paid_points: Mapped[int | None] = mapped_column(BigId)
    actor_type: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[str | None] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A purchase: the version of its merchant's earn rules it was earned under, and the till's
    # store and items as sent (SPEC 3.3).
    rules_version: Mapped[int | None] = mapped_column(Integer)
    store: Mapped[str | None] = mapped_column(String(100))
    items: Mapped[list[Any] | None] = mapped_column(Json)
    # A redemption's purpose (TRANSACTION_PURPOSES), copied to its reversal; NULL at a till.
    purpose: Mapped[str | None] = mapped_column(String(16))


class Transfer(Base):
    __tablename__ = "transfers"
    __table_args__ = (
        CheckConstraint(_one_of("kind", TRANSFER_KINDS), name="kind"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="two_accounts"),
        Index("ix_transfers_debit", "debit_account_id", "id"),
        Index("ix_transfers_credit", "credit_account_id", "id"),
        Index("ix_transfers_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("transactions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    debit_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    credit_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Lot(Base):
    """Points from one award by one issuer. `remaining` is the only mutable column, changed only
    under the member account's lock; the consumption records explain every change to it."""

    __tablename__ = "lots"
    __table_args__ = (
        CheckConstraint(_one_of("source", LOT_SOURCES), name="source"),
        CheckConstraint("points > 0 AND remaining >= 0 AND remaining <= points", name="remaining"),
        # SPEC 2: open lots are consumed soonest-expiring first, ties by creation.
        Index(
            "ix_lots_open",
            "account_id",
            "expires_at",
            "id",
            sqlite_where=text("remaining > 0"),
            postgresql_where=text("remaining > 0"),
        ),
        Index(
            "ix_lots_open_expiry",
            "expires_at",
            sqlite_where=text("remaining > 0"),
            postgresql_where=text("remaining > 0"),
        ),
        # The nightly confirmation's work: lots still pending, by the end of their window.
        Index(
            "ix_lots_pending",
            "pending_until",
            sqlite_where=text(PENDING_SQL),
            postgresql_where=text(PENDING_SQL),
        ),
        # Settlement: the points awarded pending on a day (counted when confirmed instead).
        Index(
            "ix_lots_pending_created",
            "created_at",
            sqlite_where=text("pending_until IS NOT NULL"),
            postgresql_where=text("pending_until IS NOT NULL"),
        ),
        CheckConstraint(
            "confirmed_at IS NULL OR pending_until IS NOT NULL", name="confirmed_if_pending"
        ),
        # The nightly `points.expiring` notice looks only at open lots not yet told of.
        Index(
            "ix_lots_unnoticed",
            "expires_at",
            sqlite_where=text("remaining > 0 AND expiring_notice_at IS NULL"),
            postgresql_where=text("remaining > 0 AND expiring_notice_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    issuer_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id"), unique=True)
    source: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(BigId)
    remaining: Mapped[int] = mapped_column(BigId)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expiring_notice_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # SPEC 2, Pending points: an award at a merchant with a pending window makes lots that are
    # pending until confirmed (`pending_until` is when the window ends, never changed;
    # `confirmed_at` is set once, by the nightly job). A pending lot is not spendable: only a
    # refund of its own purchase may take its points (a `cancel`).
    pending_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LotConsumption(Base):
    """Which issuer's points left (or came back to) which lot, through which transfer, credited
    to which account: the record settlement prices. Kinds:
    redeem / clawback / expire: points taken from a lot by that transfer;
    debt: points a clawback could not find (no lot), owed by the member;
    repay: points of a new or restored lot that paid off debt, credited to the operator;
    restore: points a reversal gave back to the lot an earlier consumption took them from;
    cancel: points a refund took from its own purchase's lot while that lot was still pending;
    confirm: a pending lot's points confirmed (nothing taken; the lot's award transfer)."""

    __tablename__ = "lot_consumptions"
    __table_args__ = (
        CheckConstraint(_one_of("kind", CONSUMPTION_KINDS), name="kind"),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("(kind = 'debt') = (lot_id IS NULL)", name="debt_has_no_lot"),
        Index("ix_lot_consumptions_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id"), index=True)
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(BigId)
    member_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    issuer_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    redeemer_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    # A restore names the consumption it undoes, once: a second restore is refused by the database.
    restores_id: Mapped[int | None] = mapped_column(ForeignKey("lot_consumptions.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Hold(Base):
    __tablename__ = "holds"
    __table_args__ = (
        CheckConstraint(_one_of("status", HOLD_STATUSES), name="status"),
        CheckConstraint("points > 0", name="points_positive"),
        Index(
            "ix_holds_active",
            "account_id",
            "expires_at",
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    points: Mapped[int] = mapped_column(BigId)
    status: Mapped[str] = mapped_column(String(16), default="active")
    captured_points: Mapped[int | None] = mapped_column(BigId)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
