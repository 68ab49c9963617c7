"""Settlement's tables: one run per business day with a position
per merchant and the issuer x redeemer flows, monthly statements, and the payment instructions and
Stripe events that turn statements into money.

Money is stored as exact decimal strings in major units (`"-1.125"`): SQLite has no exact decimal
type, and a string cannot drift. Statements round once, to minor units, and say so in a line."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
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

RUN_KINDS = ("final", "provisional")
RUN_STATUSES = ("queued", "running", "succeeded", "failed")
INSTRUCTION_KINDS = ("transfer", "invoice")
INSTRUCTION_STATUSES = ("created", "submitted", "succeeded", "failed")
Money = String(48)


class SettlementRun(Base):
    """One business day's settlement. A `final` run exists at most once per day and is what
    statements add up; `provisional` runs report on a day still open and move nothing."""

    __tablename__ = "settlement_runs"
    __table_args__ = (
        CheckConstraint("kind IN ('final', 'provisional')", name="kind"),
        CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="status"),
        Index(
            "uq_settlement_runs_final_day",
            "business_date",
            unique=True,
            sqlite_where=text("kind = 'final'"),
            postgresql_where=text("kind = 'final'"),
        ),
        Index("ix_settlement_runs_day", "business_date", "id"),
        # The settlement gate's watermark: the latest end of a final run.
        Index(
            "ix_settlement_runs_final_end",
            "window_end",
            sqlite_where=text("kind = 'final'"),
            postgresql_where=text("kind = 'final'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    business_date: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    currency: Mapped[str | None] = mapped_column(String(3))
    funding_model: Mapped[str | None] = mapped_column(String(16))
    totals: Mapped[dict[str, Any] | None] = mapped_column(Json)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SettlementPosition(Base):
    """A merchant's day: points by movement, and money by component (`components`, exact
    decimal strings) adding up to `owed` and `receivable`; `net = owed - receivable`."""

    __tablename__ = "settlement_positions"

    run_id: Mapped[int] = mapped_column(ForeignKey("settlement_runs.id"), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    issued: Mapped[int] = mapped_column(BigId)
    confirmed: Mapped[int] = mapped_column(BigId)
    redeemed: Mapped[int] = mapped_column(BigId)
    expired: Mapped[int] = mapped_column(BigId)
    clawed_back: Mapped[int] = mapped_column(BigId)
    reversed: Mapped[int] = mapped_column(BigId)
    owed: Mapped[str] = mapped_column(Money)
    receivable: Mapped[str] = mapped_column(Money)
    net: Mapped[str] = mapped_column(Money)
    components: Mapped[dict[str, str]] = mapped_column(Json)


class SettlementFlow(Base):
    """Points of one issuer spent at one redeemer during a run's day, net of reversals, and
    their value: what the issuer would owe the redeemer without the operator. NULL is the
    operator (as issuer of its bonuses, or as the redeemer a debt repayment, a draw entry or an
    order of its own reward goes to). An order is a flow to its supplier, at the point value."""

    __tablename__ = "settlement_flows"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("settlement_runs.id"), index=True)
    issuer_merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    redeemer_merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    points: Mapped[int] = mapped_column(BigId)
    amount: Mapped[str] = mapped_column(Money)


class Statement(Base):
    """A merchant's month: its days' positions added up by component, the net rounded once
    (half-even) with the rounding shown, an opening carried from earlier statements whose payout
    failed, and the closing the payment instruction settles. Positive: the merchant pays.

    `carried_into_id` is set on a statement whose payout failed, once, to the statement that
    carried its closing: a failed payout is carried exactly once."""

    __tablename__ = "statements"
    __table_args__ = (UniqueConstraint("merchant_id", "month", name="uq_statements_month"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    month: Mapped[str] = mapped_column(String(7))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="issued")
    opening: Mapped[str] = mapped_column(Money)
    exact_net: Mapped[str] = mapped_column(Money)
    rounding: Mapped[str] = mapped_column(Money)
    net: Mapped[str] = mapped_column(Money)
    closing: Mapped[str] = mapped_column(Money)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    days: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    carried_into_id: Mapped[int | None] = mapped_column(ForeignKey("statements.id"), index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PaymentInstruction(Base):
    """The money a statement's closing moves: a Stripe Transfer to the merchant's connected
    account (the operator pays) or an Invoice to it as a customer (the merchant pays). Its
    `public_id` is the Stripe idempotency key, so no retry, crash or rerun pays twice."""

    __tablename__ = "payment_instructions"
    __table_args__ = (
        CheckConstraint("kind IN ('transfer', 'invoice')", name="kind"),
        CheckConstraint("status IN ('created', 'submitted', 'succeeded', 'failed')", name="status"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id"), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigId)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="created")
    stripe_id: Mapped[str | None] = mapped_column(String(255), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StripeEvent(Base):
    """An inbound Stripe event, kept by its id so a replay is recognised and ignored."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(120))
    created: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


DISPUTE_STATUSES = ("open", "resolved", "rejected")
NOTE_KINDS = ("credit_note", "debit_note")


class StatementDispute(Base):
    """A merchant's dispute of one line of one of its statements (SPEC 3.10), and how staff
    settled it: a credit note (the operator owes the merchant `note_minor`), a debit note (the
    merchant owes it), or a rejection. A note is stated once, as its own line of the merchant's
    next statement (`applied_statement_id`); the disputed statement is never changed.

    `line` is the line's 1-based number on the statement, `line_kind` its kind as it was.
    At most one open dispute per statement line (a partial unique index)."""

    __tablename__ = "statement_disputes"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'resolved', 'rejected')", name="status"),
        CheckConstraint(
            "note_kind IS NULL OR note_kind IN ('credit_note', 'debit_note')", name="note_kind"
        ),
        CheckConstraint("note_minor IS NULL OR note_minor > 0", name="note_positive"),
        CheckConstraint(
            "(status = 'resolved') = (note_kind IS NOT NULL AND note_minor IS NOT NULL)",
            name="resolved_has_note",
        ),
        Index(
            "uq_statement_disputes_open_line",
            "statement_id",
            "line",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_statement_disputes_merchant", "merchant_id", "id"),
        Index("ix_statement_disputes_status", "status", "id"),
        # The notes the next statement of their merchant will state.
        Index(
            "ix_statement_disputes_unstated",
            "merchant_id",
            sqlite_where=text("status = 'resolved' AND applied_statement_id IS NULL"),
            postgresql_where=text("status = 'resolved' AND applied_statement_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    line: Mapped[int] = mapped_column(Integer)
    line_kind: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime())
    note_kind: Mapped[str | None] = mapped_column(String(16))
    note_minor: Mapped[int | None] = mapped_column(BigId)
    currency: Mapped[str] = mapped_column(String(3))
    resolution: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_by: Mapped[str | None] = mapped_column(String(320))
    applied_statement_id: Mapped[int | None] = mapped_column(ForeignKey("statements.id"))
