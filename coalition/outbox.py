"""The outbox (SPEC 3.6): every operation writes the events it causes here, in its own database
transaction, so an event exists exactly when its change does. Nothing in the core knows who
listens: `webhooks` reads this table, fans each event out to its merchant's endpoints and marks
it `dispatched_at`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from coalition.database import BigId, Json, UTCDateTime, insert_rows, table
from coalition.extensions import Base
from coalition.ids import new_id

EVENT_TYPES = frozenset(
    {
        "purchase.created",
        "purchase.refunded",
        "redemption.created",
        "redemption.reversed",
        "hold.captured",
        "hold.voided",
        "member.created",
        "member.tier_changed",
        # A member erased itself: a merchant where it shopped forgets what it kept of it.
        "member.erased",
        "points.expiring",
        "points.expired",
        "points.confirmed",
        "statement.issued",
        # Statement disputes (settlement.disputes): a merchant disputed a line, staff answered.
        "statement.disputed",
        "dispute.resolved",
        "payout.paid",
        "payout.failed",
        # The paid membership (coalition.members.premium): the coalition's, no merchant's.
        "membership.started",
        "membership.renewal_due",
        "membership.lapsed",
        "membership.refunded",
        # The rewards catalogue (rewards/): an order of a supplier's reward, its fulfilment
        # (for a voucher, its acceptance at the till) or cancel; routed to the supplier.
        "order.created",
        "order.fulfilled",
        "order.cancelled",
        "voucher.accepted",
        # A prize draw closed: one event per winner (draws.services.close), the coalition's.
        "draw.closed",
        # A merchant's webhook endpoint was turned off for failing five days (or answering 410).
        "webhook_endpoint.disabled",
        # The portal's "send a test event": delivered to the one endpoint it was sent to.
        "webhook_endpoint.test",
        # Development only: the portal's password reset link, as there is no mail server.
        "merchant.password_reset_requested",
    }
)


class OutboxEvent(Base):
    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_merchant", "merchant_id", "id"),
        # What the webhooks have yet to fan out to endpoints (decision 230).
        Index(
            "ix_outbox_events_undispatched",
            "id",
            postgresql_where=text("dispatched_at IS NULL"),
            sqlite_where=text("dispatched_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    # The merchant the event concerns (its own transaction or statement); NULL: the coalition's.
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set by `webhooks` once it has made this event's deliveries (NULL: not yet); the only
    # column of the outbox anyone but its writer changes.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


outbox_events = table(OutboxEvent)


def event_row(
    type: str,
    data: dict[str, Any],
    now: datetime,
    *,
    merchant_id: int | None = None,
    member_id: int | None = None,
) -> dict[str, Any]:
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    return {
        "public_id": new_id("evt"),
        "type": type,
        "merchant_id": merchant_id,
        "member_id": member_id,
        "data": data,
        "created_at": now,
    }


def record(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Write events made by `event_row`, in the caller's transaction."""
    insert_rows(session, outbox_events, list(rows))


def emit(
    session: Session,
    type: str,
    data: dict[str, Any],
    now: datetime,
    *,
    merchant_id: int | None = None,
    member_id: int | None = None,
) -> None:
    """Write one event, in the caller's transaction: `record` of one `event_row`."""
    record(session, [event_row(type, data, now, merchant_id=merchant_id, member_id=member_id)])
