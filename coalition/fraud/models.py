"""The fraud tables (SPEC 3.10): the events the nightly report reads besides the ledger (spendings
refused by a velocity limit, wrong redemption codes), and the alerts the report writes. Only the
operator's and the system's tenants see either (row-level security, migrations
20261129_notices and 20261202_fraud)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from coalition.database import BigId, Json, UTCDateTime, table
from coalition.extensions import Base

# A spending refused by a velocity limit; a wrong redemption code (`code_lockout`: the wrong code
# that locked the member's redemption, decision 321).
FRAUD_KINDS: Final = ("member_velocity", "merchant_velocity", "wrong_code", "code_lockout")
# What the nightly report flags (docs/fraud.md says what each means, its rule, its evidence).
ALERT_KINDS: Final = (
    "redemption_excess",
    "self_dealing",
    "enrol_drain",
    "unusual_transaction",
    "earn_spend_cluster",
    "wrong_codes",
    "velocity",
)
ALERT_STATES: Final = ("open", "dismissed", "confirmed")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class FraudEvent(Base):
    """Something the fraud report must see: what happened, to which member at which merchant,
    with its figures (`details`)."""

    __tablename__ = "fraud_events"
    __table_args__ = (
        CheckConstraint(_one_of("kind", FRAUD_KINDS), name="kind"),
        Index("ix_fraud_events_merchant", "merchant_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    details: Mapped[dict[str, Any]] = mapped_column(Json)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


fraud_events = table(FraudEvent)


class FraudAlert(Base):
    """One finding of the nightly fraud report: its kind, whom it is about (a merchant, a member
    or both), its evidence (figures, transactions and members involved, the thresholds used)
    and the operator's decision. `key` names the finding, so a rerun of the report (or a
    crash and a rerun) never writes it twice (decision 317)."""

    __tablename__ = "fraud_alerts"
    __table_args__ = (
        CheckConstraint(_one_of("kind", ALERT_KINDS), name="kind"),
        CheckConstraint(_one_of("state", ALERT_STATES), name="state"),
        # A dismissal says why; an open alert has no decision.
        CheckConstraint("state <> 'dismissed' OR reason IS NOT NULL", name="dismissed_reason"),
        CheckConstraint("(state = 'open') = (decided_at IS NULL)", name="decided"),
        Index("ix_fraud_alerts_state", "state", "id"),
        Index("ix_fraud_alerts_merchant", "merchant_id", "id"),
        Index("ix_fraud_alerts_kind", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    business_date: Mapped[date] = mapped_column(Date)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    evidence: Mapped[dict[str, Any]] = mapped_column(Json)
    state: Mapped[str] = mapped_column(String(16), default="open")
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


fraud_alerts = table(FraudAlert)
