"""The API's representations of the ledger's transactions (SPEC 3.3), shared by the answers of
the points routes (`merchants`) and the outbox events the ledger writes (SPEC 3.6: an event's
`data` is what the API shows of the same thing). One function per shape, so the two cannot
drift apart; tests/webhooks/test_events.py holds each event to its route's answer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import economics
from coalition.ledger.reads import members

# SPEC 3.3's five parts of a purchase's points, and `premium` (a paid membership's extra points):
# the keys of `BreakdownSchema` in `merchants.schemas`.
BREAKDOWN_PARTS = ("base", "campaign", "tier", "welcome", "stamp", "premium")


def breakdown(stored: Mapping[str, int] | None) -> dict[str, int]:
    """A purchase's points in SPEC 3.3's parts. A purchase written outside the API may carry the
    ledger's part names (`merchant`), which is its base here."""
    stored = stored or {}
    parts = {part: stored.get(part, 0) for part in BREAKDOWN_PARTS}
    parts["base"] = stored.get("base", stored.get("merchant", 0))
    return parts


def earn(public_id: str, points: int, stored: Mapping[str, int] | None) -> dict[str, Any]:
    """A purchase's transaction, as `POST /purchases` answers it."""
    return {"id": public_id, "type": "earn", "points": points, "breakdown": breakdown(stored)}


def member_ids(session: Session, member_ids: Iterable[int]) -> dict[int, str]:
    """The public ids of these members (by internal id), in one query."""
    wanted = sorted(set(member_ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(members.c.id, members.c.public_id).where(members.c.id.in_(wanted))
    ).all()
    return {row.id: row.public_id for row in rows}


def member(session: Session, member_id: int, public_id: str | None = None) -> dict[str, str]:
    """A member as an event names it: its public id, nothing else (no contact details, no
    balance). `public_id` when the caller knows it already, else read."""
    if public_id is None:
        public_id = member_ids(session, [member_id])[member_id]
    return {"id": public_id}


def money(amount_minor: int, currency: str) -> dict[str, Any]:
    return {"amount": amount_minor, "currency": currency}


def redemption_value(session: Session, points: int, at: datetime) -> dict[str, Any]:
    """What `points` spent at `at` are worth (SPEC 2's `point_value`, coalition-wide, in the
    terms of that business day), as money."""
    terms = economics.terms_at(at, session=session)
    return money(economics.value_minor(points, terms), terms.currency)


def redemption(
    public_id: str, points: int, value: Mapping[str, Any], hold: str | None = None
) -> dict[str, Any]:
    """A redemption's transaction (a hold's capture names its hold), as `POST /redemptions` and
    `POST /holds/{id}/capture` answer it."""
    shown: dict[str, Any] = {"id": public_id, "type": "redeem", "points": points, "value": value}
    if hold is not None:
        shown["hold"] = hold
    return shown


def refund(
    public_id: str,
    purchase: str,
    amount: Mapping[str, Any],
    points_clawed_back: int,
    clawed: Mapping[str, int],
) -> dict[str, Any]:
    """A refund's transaction, as `POST /purchases/{id}/refunds` answers it."""
    return {
        "id": public_id,
        "type": "refund",
        "purchase": purchase,
        "amount": dict(amount),
        "points_clawed_back": points_clawed_back,
        "breakdown": dict(clawed),
    }


def reversal(public_id: str, redemption_id: str, points: int) -> dict[str, Any]:
    """A redemption's reversal, as `POST /redemptions/{id}/reversal` answers it."""
    return {"id": public_id, "type": "reversal", "redemption": redemption_id, "points": points}


def closed_hold(public_id: str, points: int, status: str) -> dict[str, Any]:
    """A hold no longer active, as `POST /holds/{id}/void` answers it."""
    return {"id": public_id, "points": points, "status": status}
