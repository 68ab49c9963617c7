"""A merchant's portal password (SPEC 3.9): checking it at sign-in, and resetting it by a signed
link that expires after an hour and stops working once the password has changed (it signs a
fragment of the current hash). There is no mail server: in development the link goes to the
log and to the outbox (`merchant.password_reset_requested`); the answer is the same whether or
not the email is known."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from coalition import outbox, tenancy
from coalition.database import table
from coalition.errors import CoalitionError
from merchants import portal_reads
from merchants.models import Merchant
from merchants.portal_reads import PortalMerchant

log = logging.getLogger(__name__)

merchants = table(Merchant)

RESET_SALT = "coalition.portal.password-reset"
RESET_MAX_AGE = 3600  # seconds: an hour
RESET_EVENT = "merchant.password_reset_requested"
# A hash of this shape takes as long to check as a real one: an unknown email answers no faster.
_DUMMY_HASH = generate_password_hash("not anyone's password")


class InvalidResetLink(CoalitionError):
    status, code, title = 400, "invalid_reset_link", "The reset link is not valid"


def authenticate(session: Session, email: str, password: str) -> PortalMerchant | None:
    """The merchant that applied with `email`, if `password` is its password (whatever its
    status: the page shows a merchant that is not active its standing)."""
    found = portal_reads.merchant_by_email(session, email)
    if found is None or not found[1]:
        check_password_hash(_DUMMY_HASH, password)
        return None
    merchant, password_hash = found
    return merchant if check_password_hash(password_hash or "", password) else None


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=RESET_SALT)


def _fragment(password_hash: str) -> str:
    return password_hash[-16:]


def request_reset(
    session: Session, email: str, now: datetime, link_for: Callable[[str], str]
) -> None:
    """Make a reset link for the merchant with `email` (`link_for(token)` gives its URL) and
    hand it on: the log and, in development, the outbox. An unknown email does nothing."""
    found = portal_reads.merchant_by_email(session, email)
    if found is None or not found[1]:
        return
    merchant, password_hash = found
    token = _serializer().dumps({"m": merchant.public_id, "h": _fragment(password_hash or "")})
    link = link_for(token)
    log.info("password reset link for merchant %s: %s", merchant.public_id, link)
    if current_app.config["COALITION_ENV"] == "development":
        with tenancy.acting_as(tenancy.SYSTEM, session):
            outbox.emit(
                session,
                RESET_EVENT,
                {"merchant": merchant.public_id, "email": merchant.email, "link": link},
                now,
                merchant_id=merchant.id,
            )


def _merchant_of(session: Session, token: str) -> PortalMerchant:
    try:
        data: Any = _serializer().loads(token, max_age=RESET_MAX_AGE)
    except SignatureExpired as exc:
        raise InvalidResetLink("the reset link has expired") from exc
    except BadSignature as exc:
        raise InvalidResetLink("the reset link is not one of ours") from exc
    if not isinstance(data, dict) or not isinstance(data.get("m"), str):
        raise InvalidResetLink("the reset link is not one of ours")
    merchant = portal_reads.merchant_by_public_id(session, data["m"])
    found = (
        None if merchant is None else portal_reads.merchant_by_email(session, merchant.email or "")
    )
    if merchant is None or found is None or _fragment(found[1] or "") != data.get("h"):
        raise InvalidResetLink("the reset link was used or the password changed since")
    return merchant


def check_reset(session: Session, token: str) -> PortalMerchant:
    """The merchant a reset link is for; `InvalidResetLink` when it expired, was used (the
    password changed since) or was not made here."""
    return _merchant_of(session, token)


def reset_password(session: Session, token: str, password: str) -> PortalMerchant:
    """Set the password the link allows; the link (and any other made before) stops working."""
    merchant = _merchant_of(session, token)
    with tenancy.acting_as(tenancy.SYSTEM, session):
        session.execute(
            update(merchants)
            .where(merchants.c.id == merchant.id)
            .values(password_hash=generate_password_hash(password))
        )
    return merchant
