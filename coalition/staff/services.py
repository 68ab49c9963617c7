"""Staff accounts: made by the operator's CLI, checked at the console's sign-in, with a second
factor (TOTP, RFC 6238) that the staff sets up by scanning a provisioning URI and confirming a
code. Services take a session and plain values; the console's views and the CLI commit."""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Final

import pyotp
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from coalition import audit
from coalition.database import table
from coalition.errors import CoalitionError, InvalidRequest
from coalition.staff.models import ROLES, Staff

staff_table = table(Staff)

MIN_PASSWORD: Final = 12
MAX_PASSWORD: Final = 200
MAX_EMAIL: Final = 320
TOTP_ISSUER: Final = "Coalition operator console"
# Roles that must have a second factor in production (SPEC 3.9): they move money.
TOTP_REQUIRED_ROLES: Final = ("admin", "finance")


class StaffEmailTaken(CoalitionError):
    status, code, title = 409, "email_taken", "Email already registered"


class InvalidTotpCode(CoalitionError):
    status, code, title = 422, "invalid_code", "Invalid code"


@dataclass(frozen=True)
class StaffMember:
    """A staff account as the console knows it: no secrets."""

    id: int
    email: str
    role: str
    has_totp: bool
    disabled: bool

    @property
    def actor(self) -> audit.Actor:
        return audit.Actor.staff(self.id, self.email)


def _normal_email(email: str) -> str:
    return email.strip().lower()


def check_email(email: str) -> str:
    """The email as stored (trimmed, lower-cased), or `InvalidRequest`."""
    email = _normal_email(email)
    local, at, domain = email.partition("@")
    if (
        not at
        or not local
        or "." not in domain
        or len(email) > MAX_EMAIL
        or any(c.isspace() or unicodedata.category(c) in ("Cc", "Cs") for c in email)
    ):
        raise InvalidRequest("give an email address", errors={"email": ["not an email address"]})
    return email


def check_new_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidRequest(
            f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters",
            errors={"password": [f"must have {MIN_PASSWORD} to {MAX_PASSWORD} characters"]},
        )


def generate_password() -> str:
    """A password to print once: 20 URL-safe characters (about 120 bits)."""
    return secrets.token_urlsafe(15)


def create_staff(
    session: Session, *, email: str, role: str, password: str, now: datetime
) -> StaffMember:
    """A new staff account. One per email in any letter case (`StaffEmailTaken`); `role` one of
    `ROLES`; a password of `MIN_PASSWORD` characters or more."""
    email = check_email(email)
    if role not in ROLES:
        raise InvalidRequest(
            f"the role is one of {', '.join(ROLES)}", errors={"role": [f"not one of {ROLES}"]}
        )
    check_new_password(password)
    if session.execute(select(staff_table.c.id).where(staff_table.c.email == email)).first():
        raise StaffEmailTaken("a staff account with this email exists")
    savepoint = session.begin_nested()
    try:
        staff_id = session.execute(
            insert(staff_table)
            .values(
                email=email,
                role=role,
                password_hash=generate_password_hash(password, method="scrypt"),
                created_at=now,
                disabled=False,
            )
            .returning(staff_table.c.id)
        ).scalar_one()
        savepoint.commit()
    except IntegrityError as exc:  # the same email, at the same moment
        savepoint.rollback()
        raise StaffEmailTaken("a staff account with this email exists") from exc
    return StaffMember(staff_id, email, role, has_totp=False, disabled=False)


def _member(row: object) -> StaffMember:
    return StaffMember(
        row.id,  # type: ignore[attr-defined]
        row.email,  # type: ignore[attr-defined]
        row.role,  # type: ignore[attr-defined]
        has_totp=row.totp_secret is not None,  # type: ignore[attr-defined]
        disabled=row.disabled,  # type: ignore[attr-defined]
    )


def find_staff(session: Session, staff_id: int) -> StaffMember | None:
    """The staff account with this id, or None."""
    row = session.execute(select(staff_table).where(staff_table.c.id == staff_id)).one_or_none()
    return None if row is None else _member(row)


@cache
def _decoy_hash() -> str:
    return generate_password_hash("not anybody's password", method="scrypt")


def check_password(session: Session, email: str, password: str) -> StaffMember | None:
    """The enabled staff account with this email and password, or None. An unknown email costs
    as much time as a wrong password, so the answer tells nobody which emails are staff."""
    email = _normal_email(email)
    row = None
    if email and not any(unicodedata.category(c) in ("Cc", "Cs") for c in email):
        row = session.execute(select(staff_table).where(staff_table.c.email == email)).one_or_none()
    known = row.password_hash if row is not None else None
    if not check_password_hash(known or _decoy_hash(), password):
        return None
    if row is None or row.disabled:
        return None
    return _member(row)


def needs_totp_setup(staff: StaffMember, environment: str) -> bool:
    """Whether the staff must set up a second factor before anything else: in production,
    `admin` and `finance` without one."""
    return environment == "production" and staff.role in TOTP_REQUIRED_ROLES and not staff.has_totp


def new_totp_secret() -> str:
    """A secret to offer at set-up; it is stored only once a code from it is confirmed."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    """The `otpauth://` URI an authenticator app reads from a QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)


def _accepted_step(secret: str, code: str, now: datetime, last_step: int) -> int | None:
    """The time step `code` belongs to (this one or the one either side, for clock drift), or
    None; a step at or before `last_step` is not accepted again (a code is single use)."""
    code = code.strip().replace(" ", "")
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    step = totp.timecode(now)
    for candidate in (step, step - 1, step + 1):
        if candidate > last_step and secrets.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


def confirm_totp(
    session: Session, staff: StaffMember, secret: str, code: str, now: datetime
) -> None:
    """Keep `secret` as the staff's second factor once `code` shows the app has it
    (`InvalidTotpCode` otherwise). Recorded in the audit log."""
    step = _accepted_step(secret, code, now, 0)
    if step is None:
        raise InvalidTotpCode("the code does not match; check the app's clock and try again")
    session.execute(
        update(staff_table)
        .where(staff_table.c.id == staff.id)
        .values(totp_secret=secret, totp_step_used=step)
    )
    audit.record(
        session,
        staff.actor,
        "staff.totp_set_up",
        "staff",
        staff.id,
        before={"has_totp": staff.has_totp},
        after={"has_totp": True},
        now=now,
    )


def verify_totp(session: Session, staff_id: int, code: str, now: datetime) -> bool:
    """Whether `code` is the staff's current one, not used before; using it marks its step."""
    row = session.execute(
        select(staff_table.c.totp_secret, staff_table.c.totp_step_used)
        .where(staff_table.c.id == staff_id)
        .with_for_update()
    ).one_or_none()
    if row is None or row.totp_secret is None:
        return False
    step = _accepted_step(row.totp_secret, code, now, row.totp_step_used)
    if step is None:
        return False
    session.execute(
        update(staff_table).where(staff_table.c.id == staff_id).values(totp_step_used=step)
    )
    return True


def record_sign_in(session: Session, staff: StaffMember, now: datetime) -> None:
    """A staff's sign-in, in the audit log."""
    audit.record(session, staff.actor, "staff.sign_in", "staff", staff.id, now=now)
