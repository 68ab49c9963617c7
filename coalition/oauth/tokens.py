"""Secrets, tokens and the bearer check every API route relies on.

A secret or token is 256 random bits, shown once; only its SHA-256 digest is stored. Checking a
bearer token is one indexed query (the token, its client and, for a member-delegated token, the
member's account), made as the system tenant since nobody is known yet. A worker keeps what it
verified for a few minutes (`verified`): what a token says never changes, and whether it is still
live (not revoked, its client neither revoked nor disabled) is confirmed by the statement that
sets the request's tenant (`Principal.tenant`), so a revocation is obeyed from its commit on,
by every worker, at no extra round trip."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from coalition import tenancy
from coalition.database import table
from coalition.ledger.models import Account
from coalition.oauth import scopes as scope_sets
from coalition.oauth.models import OAuthClient, OAuthToken

clients = table(OAuthClient)
tokens = table(OAuthToken)
accounts = table(Account)

ACCESS_TOKEN_LIFETIME = timedelta(hours=1)
REFRESH_TOKEN_LIFETIME = timedelta(days=30)
# How long a worker trusts what it verified of a token (its liveness is confirmed per request),
# and how many tokens it remembers (TIGER_STYLE: a bound; past it, it starts over).
VERIFIED_LIFETIME = timedelta(minutes=5)
MAX_VERIFIED = 10_000


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(prefix: str) -> str:
    """A fresh secret with a prefix that says what it is (`cs_` secret, `at_` access token...)."""
    return prefix + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a merchant's client, a member through a merchant's client (a
    member-delegated token), or the operator."""

    kind: str  # "merchant", "member" or "operator"
    client_pk: int
    client_id: str
    merchant_id: int | None
    member_id: int | None
    member_account_id: int | None
    scopes: frozenset[str]
    token_pk: int
    expires_at: datetime

    @property
    def tenant(self) -> tenancy.Tenant:
        """The tenant the token acts as, whose every transaction confirms the token is live."""
        if self.merchant_id is None:
            return replace(tenancy.OPERATOR, token=self.token_pk)
        return tenancy.Tenant.merchant(self.merchant_id, self.member_account_id, self.token_pk)

    @property
    def idempotency_scope(self) -> str:
        """Keys are per tenant (SPEC 3.1): equal to the tenant's RLS setting."""
        return self.tenant.setting


def store_token(
    session: Session,
    *,
    client_pk: int,
    merchant_id: int | None,
    scope: str,
    access_token: str,
    now: datetime,
    expires_in: timedelta = ACCESS_TOKEN_LIFETIME,
    refresh_token: str | None = None,
    member_id: int | None = None,
    family: str | None = None,
) -> int:
    """Store an issued token, hashed. A token with a refresh token belongs to a `family`: the
    one of the token it was refreshed from, else a new one (decision 214)."""
    if refresh_token and family is None:
        family = new_secret("fam_")[:40]
    return session.execute(
        insert(tokens)
        .values(
            family=family,
            client_id=client_pk,
            merchant_id=merchant_id,
            member_id=member_id,
            scope=scope,
            access_token_hash=digest(access_token),
            refresh_token_hash=digest(refresh_token) if refresh_token else None,
            issued_at=now,
            expires_at=now + expires_in,
            refresh_expires_at=now + REFRESH_TOKEN_LIFETIME if refresh_token else None,
        )
        .returning(tokens.c.id)
    ).scalar_one()


def issue_token(
    session: Session,
    *,
    client_id: str,
    scope: str,
    now: datetime,
    member_id: int | None = None,
    expires_in: timedelta = ACCESS_TOKEN_LIFETIME,
) -> str:
    """An access token for a client without the OAuth dance (the demo and tests use it; the
    token endpoint goes through Authlib). Returns the token, which is stored only hashed."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        client = session.execute(
            select(clients.c.id, clients.c.merchant_id).where(clients.c.client_id == client_id)
        ).one()
        access_token = new_secret("at_")
        store_token(
            session,
            client_pk=client.id,
            merchant_id=client.merchant_id,
            scope=scope,
            access_token=access_token,
            now=now,
            expires_in=expires_in,
            member_id=member_id,
        )
    return access_token


def authenticate(session: Session, bearer: str, now: datetime) -> Principal | None:
    """The principal of a live access token, or None for an unknown, expired or revoked one, or
    one whose client is revoked or disabled (its merchant suspended)."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        row = session.execute(
            select(
                tokens.c.id,
                tokens.c.scope,
                tokens.c.member_id,
                tokens.c.merchant_id,
                tokens.c.expires_at,
                tokens.c.revoked_at,
                clients.c.id.label("client_pk"),
                clients.c.client_id,
                clients.c.kind,
                clients.c.disabled,
                clients.c.revoked_at.label("client_revoked_at"),
                accounts.c.id.label("member_account_id"),
            )
            .join(clients, clients.c.id == tokens.c.client_id)
            .outerjoin(accounts, accounts.c.member_id == tokens.c.member_id)
            .where(tokens.c.access_token_hash == digest(bearer))
        ).one_or_none()
    if (
        row is None
        or row.revoked_at is not None
        or row.expires_at <= now
        or row.disabled
        or row.client_revoked_at is not None
    ):
        return None
    return Principal(
        kind="member" if row.member_id is not None else row.kind,
        client_pk=row.client_pk,
        client_id=row.client_id,
        merchant_id=row.merchant_id,
        member_id=row.member_id,
        member_account_id=row.member_account_id,
        scopes=scope_sets.parse(row.scope),
        token_pk=row.id,
        expires_at=row.expires_at,
    )


_verified: dict[str, tuple[Principal, datetime]] = {}


def verified(session: Session, bearer: str, now: datetime) -> Principal | None:
    """`authenticate`, remembered by this worker for VERIFIED_LIFETIME: the principal of a token
    this worker verified lately and that has not expired, else `authenticate`'s answer. The
    caller acts as its `tenant`, which confirms the token is still live."""
    key = digest(bearer)
    known = _verified.get(key)
    if known is not None:
        found, checked_at = known
        if found.expires_at > now and now - checked_at < VERIFIED_LIFETIME:
            return found
        _verified.pop(key, None)
    checked = authenticate(session, bearer, now)
    if checked is not None:
        if len(_verified) >= MAX_VERIFIED:
            _verified.clear()
        _verified[key] = (checked, now)
    return checked


def forget(bearer: str) -> None:
    """Drop what this worker verified of a token (it turned out not to be live)."""
    _verified.pop(digest(bearer), None)
