"""Holds (SPEC 2, SPEC 3.3): points a merchant reserves for a later capture. A hold moves no
points, it lowers what the member has available; capturing it spends all or part of it (a
redemption, `coalition.ledger.operations.spend`), voiding it releases it. Each runs inside the
caller's transaction under the member's lock."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from coalition import outbox
from coalition.database import table
from coalition.errors import HoldNotActive, InsufficientPoints, InvalidRequest, NotFound
from coalition.ids import new_id
from coalition.ledger import shapes
from coalition.ledger.accounts import (
    MemberAccount,
    lock_member_accounts,
    lock_or_reuse,
    member_view,
)
from coalition.ledger.models import Hold
from coalition.ledger.operations import spend
from coalition.ledger.reads import held_points
from coalition.ledger.rows import Actor, check_points, insert_returning_ids

holds = table(Hold)

# SPEC 2: a hold lasts 15 minutes unless the request asks for up to 7 days.
HOLD_DEFAULT_TTL = timedelta(minutes=15)
HOLD_MAX_TTL = timedelta(days=7)


def place_hold(
    session: Session,
    *,
    member_id: int,
    merchant_id: int,
    points: int,
    now: datetime,
    ttl: timedelta = HOLD_DEFAULT_TTL,
    locked: MemberAccount | None = None,
) -> dict[str, Any]:
    """Reserve points for a later capture. Moves no points; lowers what is available.
    `locked`: the member's account, when the caller already holds its lock."""
    check_points(points)
    if not timedelta(0) < ttl <= HOLD_MAX_TTL:
        raise InvalidRequest("a hold lasts more than 0 seconds and at most 7 days")
    member = lock_or_reuse(session, member_id, locked)
    held = held_points(session, member.id, now)
    # SPEC 2: pending points cannot be reserved any more than spent.
    if points > member.spendable - held:
        available = max(member.spendable - held, 0)
        raise InsufficientPoints(
            f"the member has {available} points available, {points} were asked for",
            available=available,
        )
    public_id = new_id("hold")
    insert_returning_ids(
        session,
        holds,
        [
            {
                "public_id": public_id,
                "account_id": member.id,
                "merchant_id": merchant_id,
                "points": points,
                "status": "active",
                "expires_at": now + ttl,
                "created_at": now,
            }
        ],
    )
    hold = {
        "id": public_id,
        "points": points,
        "status": "active",
        "expires_at": (now + ttl).isoformat(),
    }
    return {"hold": hold, "member": member_view(member, held + points)}


def hold_account(session: Session, hold_public_id: str, merchant_id: int) -> int:
    """The account of the merchant's own hold, whatever its status. Another merchant's hold is
    not found (SPEC 3.2)."""
    account_id = session.execute(
        select(holds.c.account_id).where(
            holds.c.public_id == hold_public_id, holds.c.merchant_id == merchant_id
        )
    ).scalar_one_or_none()
    if account_id is None:
        raise NotFound("no such hold")
    return account_id


def active_hold_points(
    session: Session, hold_public_id: str, merchant_id: int, now: datetime
) -> int | None:
    """The points of the merchant's own hold while it is active, else None."""
    row = session.execute(
        select(holds.c.points, holds.c.status, holds.c.expires_at).where(
            holds.c.public_id == hold_public_id, holds.c.merchant_id == merchant_id
        )
    ).one_or_none()
    if row is None or row.status != "active" or row.expires_at <= now:
        return None
    return int(row.points)


def _locked_hold(
    session: Session, hold_public_id: str, merchant_id: int, now: datetime
) -> tuple[Any, MemberAccount]:
    """The merchant's own active hold and its member's account, locked. Another merchant's hold
    is not found (SPEC 3.2)."""
    account_id = hold_account(session, hold_public_id, merchant_id)
    member = lock_member_accounts(session, [account_id])[account_id]
    hold = session.execute(select(holds).where(holds.c.public_id == hold_public_id)).one()
    if hold.status != "active":
        raise HoldNotActive(f"the hold is already {hold.status}", status_now=hold.status)
    if hold.expires_at <= now:
        raise HoldNotActive("the hold has expired", status_now="expired")
    return hold, member


def capture_hold(
    session: Session,
    *,
    hold_id: str,
    merchant_id: int,
    actor: Actor,
    now: datetime,
    points: int | None = None,
    reason: str = "hold capture",
    member_public_id: str | None = None,
    value: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Spend all of a hold's points, or fewer; the rest is released. `value` and
    `member_public_id` as for `operations.redeem`."""
    hold, member = _locked_hold(session, hold_id, merchant_id, now)
    points = hold.points if points is None else check_points(points)
    if points > hold.points:
        raise InvalidRequest(f"the hold reserves {hold.points} points; cannot capture {points}")
    held_elsewhere = held_points(session, member.id, now, excluding=hold.id)
    _, public_id = spend(
        session,
        member,
        merchant_id=merchant_id,
        points=points,
        held_elsewhere=held_elsewhere,
        actor=actor,
        now=now,
        reason=reason,
        external_id=None,
        hold_id=hold.id,
    )
    session.execute(
        update(holds)
        .where(holds.c.id == hold.id)
        .values(status="captured", captured_points=points, closed_at=now)
    )
    transaction = {"id": public_id, "type": "redeem", "points": points, "hold": hold_id}
    value = value or shapes.redemption_value(session, points, now)
    outbox.emit(
        session,
        "hold.captured",
        {
            "transaction": shapes.redemption(public_id, points, value, hold=hold_id),
            "member": shapes.member(session, member.member_id, member_public_id),
        },
        now,
        merchant_id=merchant_id,
        member_id=member.member_id,
    )
    return {"transaction": transaction, "member": member_view(member, held_elsewhere)}


def void_hold(
    session: Session,
    *,
    hold_id: str,
    merchant_id: int,
    now: datetime,
    member_public_id: str | None = None,
) -> dict[str, Any]:
    """Release a hold without spending."""
    hold, member = _locked_hold(session, hold_id, merchant_id, now)
    session.execute(
        update(holds).where(holds.c.id == hold.id).values(status="voided", closed_at=now)
    )
    outbox.emit(
        session,
        "hold.voided",
        {
            "hold": shapes.closed_hold(hold_id, hold.points, "voided"),
            "member": shapes.member(session, member.member_id, member_public_id),
        },
        now,
        merchant_id=merchant_id,
        member_id=member.member_id,
    )
    held = held_points(session, member.id, now)
    return {
        "hold": {"id": hold_id, "points": hold.points, "status": "voided"},
        "member": member_view(member, held),
    }
