"""The rotating redemption code (SPEC 2, Cards and proof of presence): RFC 6238 TOTP, 6 digits,
30-second steps, from a per-member secret. A code is accepted once inside its step (the step is
remembered), and five wrong codes within 15 minutes lock redemption for 15 minutes.

`consume` checks a code and marks its step used; a wrong code raises `InvalidCode`, and the
caller records it with `record_failure` in a transaction that is not rolled back with the
refused redemption."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyotp
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from coalition.database import table
from coalition.errors import CoalitionError, NotFound
from coalition.members.models import Member

members = table(Member)

STEP_SECONDS = 30
DIGITS = 6
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
LOCK_DURATION = timedelta(minutes=15)


class InvalidCode(CoalitionError):
    status, code, title = 403, "invalid_code", "Wrong or used redemption code"


class RedemptionLocked(CoalitionError):
    status, code, title = 403, "redemption_locked", "Redemption locked after wrong codes"


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)


def current_code(secret: str, now: datetime) -> tuple[str, datetime]:
    """The member's code at `now` and when its step ends."""
    step = int(now.timestamp()) // STEP_SECONDS
    expires_at = datetime.fromtimestamp((step + 1) * STEP_SECONDS, tz=now.tzinfo)
    return _totp(secret).at(now), expires_at


def consume(session: Session, member_id: int, code: str, now: datetime) -> None:
    """Accept the member's current code once, or refuse. Locks the member row (a code raced by
    two tills is accepted by one)."""
    row = session.execute(
        select(
            members.c.totp_secret,
            members.c.code_step_used,
            members.c.code_locked_until,
            members.c.status,
        )
        .where(members.c.id == member_id)
        .with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFound("no such member")
    if row.code_locked_until is not None and row.code_locked_until > now:
        raise RedemptionLocked(
            "too many wrong codes; redemption is locked for this member",
            locked_until=row.code_locked_until.isoformat(),
        )
    step = int(now.timestamp()) // STEP_SECONDS
    # The code of this step only: a code stops working when its step ends.
    if not (code.isascii() and code.isdigit() and len(code) == DIGITS) or not _totp(
        row.totp_secret
    ).verify(code, for_time=now, valid_window=0):
        raise InvalidCode("the code is wrong or has expired")
    if step <= row.code_step_used:
        raise InvalidCode("this code was already used; wait for the next one")
    session.execute(
        update(members)
        .where(members.c.id == member_id)
        .values(code_step_used=step, code_failures=0, code_failures_since=None)
    )


def record_failure(session: Session, member_id: int, now: datetime) -> bool:
    """Count a wrong code; the fifth within the window locks redemption (returns True then)."""
    row = session.execute(
        select(members.c.code_failures, members.c.code_failures_since)
        .where(members.c.id == member_id)
        .with_for_update()
    ).one_or_none()
    if row is None:
        return False
    if row.code_failures_since is None or now - row.code_failures_since > FAILURE_WINDOW:
        failures, since = 1, now
    else:
        failures, since = row.code_failures + 1, row.code_failures_since
    values: dict[str, object] = {"code_failures": failures, "code_failures_since": since}
    if failures >= MAX_FAILURES:
        values.update(
            code_locked_until=now + LOCK_DURATION, code_failures=0, code_failures_since=None
        )
    session.execute(update(members).where(members.c.id == member_id).values(**values))
    return failures >= MAX_FAILURES
