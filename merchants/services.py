"""Operations on merchants: an application to join (`apply`, one per email), the operator's
approval, refusal (with a reason) and suspension, and a merchant's OAuth clients. Given an
`actor`, an operator's change is written to the audit log in its transaction. Creating a
merchant also opens its issuance account in the ledger, and checks its base rate against the
operator's earn-rate bounds (SPEC 2, Earn rules)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coalition import audit, clock, economics, tenancy
from coalition.database import table
from coalition.errors import CoalitionError, InvalidRequest, NotFound
from coalition.ids import new_id
from coalition.ledger import accounts
from coalition.oauth import clients as oauth_clients
from coalition.oauth.models import OAuthClient
from merchants.models import DEFAULT_BASE_RATE, MAX_REFUSAL_REASON, Merchant

clients = table(OAuthClient)
merchants = table(Merchant)


class EmailTaken(CoalitionError):
    status, code, title = 409, "email_taken", "Email already registered"


@dataclass(frozen=True)
class Standing:
    """A merchant (its public id) and its status: `pending`, `active` or `suspended`."""

    id: str
    status: str


def create_merchant(
    session: Session,
    name: str,
    *,
    status: str = "active",
    now: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> tuple[int, str]:
    """A merchant and its ledger account. `details` are the application's other columns
    (email, country, category, website, contact_name, password_hash, base_rate). Returns (id,
    public id). A base rate outside the earn-rate bounds in force from today on is refused
    (422); without one the merchant earns at DEFAULT_BASE_RATE, or at the nearest bound."""
    public_id = new_id("mer")
    now = now or clock.utcnow()
    details = dict(details or {})
    bounds = _coalition_bounds(session, _today(now))
    if "base_rate" in details:
        check_base_rate(Decimal(details["base_rate"]), bounds)
    else:
        details["base_rate"] = _nearest(DEFAULT_BASE_RATE, bounds)
    merchant_id = session.execute(
        insert(merchants)
        .values(
            public_id=public_id,
            name=name,
            status=status,
            created_at=now,
            approved_at=now if status == "active" else None,
            **details,
        )
        .returning(merchants.c.id)
    ).scalar_one()
    accounts.open_merchant_account(session, merchant_id)
    return merchant_id, public_id


def apply(
    session: Session,
    *,
    name: str,
    email: str,
    country: str,
    category: str,
    website: str | None,
    contact_name: str,
    password_hash: str,
    now: datetime,
) -> Standing:
    """A merchant's application to join: a merchant in `pending` until the operator approves
    it. One per email, in any letter case: another is `email_taken`."""
    email = email.lower()
    if session.execute(select(merchants.c.id).where(merchants.c.email == email)).first():
        raise EmailTaken("a merchant with this email has already applied")
    savepoint = session.begin_nested()
    try:
        _, public_id = create_merchant(
            session,
            name,
            status="pending",
            now=now,
            details={
                "email": email,
                "country": country,
                "category": category,
                "website": website,
                "contact_name": contact_name,
                "password_hash": password_hash,
            },
        )
        savepoint.commit()
    except IntegrityError as exc:  # the same email, applied at the same moment
        savepoint.rollback()
        raise EmailTaken("a merchant with this email has already applied") from exc
    return Standing(public_id, "pending")


class WrongStatus(CoalitionError):
    status, code, title = 409, "wrong_status", "Not possible in the merchant's status"


def _standing_row(session: Session, merchant_public_id: str) -> Any:
    row = session.execute(
        select(
            merchants.c.id,
            merchants.c.status,
            merchants.c.name,
            merchants.c.refusal_reason,
        ).where(merchants.c.public_id == merchant_public_id)
    ).one_or_none()
    if row is None:
        raise NotFound("no such merchant")
    return row


def _set_status(
    session: Session,
    merchant_public_id: str,
    status: str,
    now: datetime,
    actor: audit.Actor | None,
    reason: str | None = None,
) -> Standing:
    row = _standing_row(session, merchant_public_id)
    stamps: dict[str, dict[str, Any]] = {
        "active": {"approved_at": now, "refusal_reason": None, "refused_at": None},
        "suspended": {"suspended_at": now},
        "refused": {"refused_at": now, "refusal_reason": reason},
    }
    stamp = stamps[status]
    session.execute(
        update(merchants).where(merchants.c.id == row.id).values(status=status, **stamp)
    )
    # A suspended (or refused) merchant's clients stop working at once: the token check reads
    # this flag.
    with tenancy.acting_as(tenancy.SYSTEM, session):
        session.execute(
            update(clients)
            .where(clients.c.merchant_id == row.id)
            .values(disabled=status != "active")
        )
    if actor is not None:
        action = {"active": "approve", "suspended": "suspend", "refused": "refuse"}[status]
        before: dict[str, Any] = {"status": row.status}
        after: dict[str, Any] = {"status": status}
        if status == "refused" or row.refusal_reason:
            before["refusal_reason"] = row.refusal_reason
            after["refusal_reason"] = reason
        audit.record(
            session,
            actor,
            f"merchant.{action}",
            "merchant",
            merchant_public_id,
            before=before,
            after=after,
            now=now,
        )
    return Standing(merchant_public_id, status)


def approve_merchant(
    session: Session, merchant_public_id: str, now: datetime, actor: audit.Actor | None = None
) -> Standing:
    """The operator lets a pending, refused or suspended merchant in; its clients work again."""
    return _set_status(session, merchant_public_id, "active", now, actor)


def suspend_merchant(
    session: Session, merchant_public_id: str, now: datetime, actor: audit.Actor | None = None
) -> Standing:
    """The operator stops a merchant: every token of its clients is refused from now on."""
    return _set_status(session, merchant_public_id, "suspended", now, actor)


def refuse_merchant(
    session: Session,
    merchant_public_id: str,
    reason: str,
    now: datetime,
    actor: audit.Actor | None = None,
) -> Standing:
    """The operator refuses a pending application, saying why (the merchant reads the reason).
    Only a pending application is refused (`wrong_status` otherwise)."""
    reason = reason.strip()
    if not reason or len(reason) > MAX_REFUSAL_REASON:
        raise InvalidRequest(
            f"give a reason of 1 to {MAX_REFUSAL_REASON} characters",
            errors={"reason": [f"must have 1 to {MAX_REFUSAL_REASON} characters"]},
        )
    if _standing_row(session, merchant_public_id).status != "pending":
        raise WrongStatus("only a pending application can be refused")
    return _set_status(session, merchant_public_id, "refused", now, actor, reason)


def create_client(
    session: Session,
    merchant_public_id: str,
    *,
    name: str,
    scopes: Iterable[str],
    redirect_uris: list[str],
    now: datetime,
    actor: audit.Actor | None = None,
) -> dict[str, Any]:
    """A new OAuth client of the merchant (till, e-shop, app): `client_id`, `client_secret`
    (shown only now) and `scopes`. A client of a merchant that is not active is created
    switched off, as `_set_status` switches off the clients of a suspended one."""
    merchant = session.execute(
        select(merchants.c.id, merchants.c.status).where(
            merchants.c.public_id == merchant_public_id
        )
    ).one_or_none()
    if merchant is None:
        raise NotFound("no such merchant")
    made = oauth_clients.create_client(
        session,
        name=name,
        merchant_id=merchant.id,
        scopes=set(scopes),
        redirect_uris=redirect_uris,
        now=now,
    )
    if merchant.status != "active":
        with tenancy.acting_as(tenancy.SYSTEM, session):
            session.execute(
                update(clients)
                .where(clients.c.client_id == made["client_id"])
                .values(disabled=True)
            )
    if actor is not None:
        audit.record(
            session,
            actor,
            "client.create",
            "client",
            made["client_id"],
            after={
                "merchant": merchant_public_id,
                "name": name,
                "scopes": made["scopes"],
                "redirect_uris": redirect_uris,
                "disabled": merchant.status != "active",
            },
            now=now,
        )
    return made


Bounds = tuple[Decimal, Decimal]


def _today(now: datetime) -> date:
    return clock.business_date(now, current_app.config["COALITION_TIMEZONE"])


def _coalition_bounds(session: Session, today: date) -> list[Bounds]:
    """The coalition's earn-rate bounds today and in every version scheduled after (a new
    merchant has no overrides of its own)."""
    return [
        economics.coalition_terms(session, day).earn_rate_bounds
        for day in economics.days_of_change(session, today)
    ]


def check_base_rate(base_rate: Decimal, bounds: list[Bounds]) -> None:
    """SPEC 2: a merchant's base rate lies within the operator's bounds, each of `bounds`."""
    for low, high in bounds:
        if not low <= base_rate <= high:
            raise InvalidRequest(
                f"a base rate of {base_rate} points per currency unit is outside the"
                f" operator's earn-rate bounds, {low} to {high}",
                errors={"base_rate": [f"must be between {low} and {high}"]},
            )


def _nearest(rate: Decimal, bounds: list[Bounds]) -> Decimal:
    """`rate`, or the bound nearest to it when it is outside `bounds` (all of them)."""
    low = max((b[0] for b in bounds), default=rate)
    high = min((b[1] for b in bounds), default=rate)
    return min(max(rate, low), high) if low <= high else low


def base_rates_outside_bounds(
    session: Session, since: date, merchant_id: int | None = None
) -> dict[str, Bounds]:
    """The merchants (public id; one, given `merchant_id`) whose base rate lies outside the
    earn-rate bounds they would trade under on `since` or a later day a version takes effect,
    with the first such bounds: what a change of the terms must not bring about."""
    query = select(merchants.c.id, merchants.c.public_id, merchants.c.base_rate)
    if merchant_id is not None:
        query = query.where(merchants.c.id == merchant_id)
    rates = session.execute(query).all()
    outside: dict[str, Bounds] = {}
    for day in economics.days_of_change(session, since):
        base, overrides = economics.merchant_terms(session, day)
        for row in rates:
            low, high = overrides.get(row.id, base).earn_rate_bounds
            if not low <= Decimal(row.base_rate) <= high:
                outside.setdefault(row.public_id, (low, high))
    return outside


@dataclass(frozen=True)
class PendingWindow:
    """A merchant's pending window (SPEC 2, Pending points): the days it chose, the operator's
    bounds in force for it today, and the days its purchases are pending under them."""

    pending_days: int
    bounds: tuple[int, int]
    in_force: int


def pending_window(session: Session, merchant_id: int, now: datetime) -> PendingWindow:
    """The merchant's pending window as its purchases now get it."""
    chosen = session.execute(
        select(merchants.c.pending_days).where(merchants.c.id == merchant_id)
    ).scalar_one_or_none()
    if chosen is None:
        raise NotFound("no such merchant")
    terms, _ = economics.in_force(session, _today(now), merchant_id)
    return PendingWindow(chosen, terms.pending_days_bounds, economics.pending_days(chosen, terms))


def set_pending_days(
    session: Session,
    merchant_id: int,
    pending_days: int,
    *,
    now: datetime,
) -> PendingWindow:
    """The merchant sets its pending window (SPEC 2): points of its purchases from now on stay
    pending that many days, normally its return period. Refused (422, `pending_days`) outside
    0 to 60 days or the operator's bounds in force for the merchant today. Purchases already
    recorded keep their own window. The caller commits."""
    before = pending_window(session, merchant_id, now)
    shortest, longest = before.bounds
    if not (isinstance(pending_days, int) and shortest <= pending_days <= longest):
        why = f"must be between {shortest} and {longest} days"
        raise InvalidRequest(
            f"a pending window of {pending_days} days is outside the operator's bounds,"
            f" {shortest} to {longest} days",
            errors={"pending_days": [why]},
        )
    session.execute(
        update(merchants).where(merchants.c.id == merchant_id).values(pending_days=pending_days)
    )
    return pending_window(session, merchant_id, now)
