"""The webhooks' tables (SPEC 3.6): a merchant's endpoints, one delivery per event and endpoint,
and every attempt at it (the delivery log). An event itself is the core's outbox row
(`coalition.outbox`); this package marks it `dispatched_at` once it has made the event's
deliveries, and writes nothing else of the core.

- An endpoint's `events` is the list of event types it wants, or NULL for all of them. A deleted
  endpoint keeps its row (its deliveries and attempts point at it) with `deleted_at` set, and is
  never shown or delivered to again.
- While a secret rotates, `previous_secret` signs beside the new one until
  `previous_secret_expires_at` (24 hours).
- A delivery is `pending` until it succeeds (`succeeded`) or its retries run out (`failed`); a
  redelivery makes it `pending` again. `next_attempt_at` is when it is due; a worker that takes
  it moves that forward by a lease, so a worker killed mid-attempt only delays it.
- An attempt keeps its time, HTTP status (NULL when no answer came), duration and a short error;
  never the response body."""

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
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from coalition.database import BigId, Json, UTCDateTime, table
from coalition.extensions import Base

DELIVERY_STATUSES = ("pending", "succeeded", "failed")
# Why an endpoint stopped receiving: its merchant turned it off, it answered 410 Gone, or it
# failed everything for five days.
DISABLED_REASONS = ("merchant", "gone", "failing")


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        Index("ix_webhook_endpoints_merchant", "merchant_id", "id"),
        CheckConstraint(
            "disabled_reason IS NULL OR disabled_reason IN ('merchant', 'gone', 'failing')",
            name="disabled_reason_known",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(200), default="")
    events: Mapped[list[str] | None] = mapped_column(Json)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(20))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Since when every delivery to it has failed (NULL after any success): five days of it
    # disable the endpoint.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
        Index("ix_webhook_deliveries_event", "event_id"),
        # An endpoint's due deliveries, for the pump (has it any?) and its delivery job (the
        # oldest due first), whatever the endpoint's history holds (decision 245).
        Index(
            "ix_webhook_deliveries_endpoint_due",
            "endpoint_id",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status_known"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_events.id"))
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_endpoint", "endpoint_id", "id"),
        Index("ix_webhook_attempts_delivery", "delivery_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The HTTP status of the answer; NULL when none came (refused, timed out, unsafe address).
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(200))


webhook_endpoints = table(WebhookEndpoint)
webhook_deliveries = table(WebhookDelivery)
webhook_attempts = table(WebhookAttempt)

__all__: list[Any] = [
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
]
