"""Authlib's view of our rows: Client, Token and AuthorizationCode adapters over the OAuth
tables (which keep every secret as a SHA-256 digest), and the look-ups the server and the
sign-in pages make. Each runs as the system tenant: nobody is known until a client
authenticates."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    InvalidScopeError,
    TokenMixin,
)
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from coalition.database import table
from coalition.extensions import Base, db
from coalition.ids import is_public_id
from coalition.members import credentials
from coalition.members.models import Member as MemberRow
from coalition.oauth import scopes as scope_sets
from coalition.oauth.models import AuthorizationCode, ClientSecret, OAuthClient, OAuthToken
from coalition.oauth.tokens import digest

clients = table(OAuthClient)
secrets_ = table(ClientSecret)
tokens = table(OAuthToken)
codes = table(AuthorizationCode)
members = table(MemberRow)

AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
GRANT_TYPES = ["authorization_code", "client_credentials", "refresh_token"]
MEMBER_GRANTS = frozenset({"authorization_code", "refresh_token"})
ALL_SCOPES = sorted(
    scope_sets.MERCHANT_SCOPES | scope_sets.MEMBER_SCOPES | scope_sets.OPERATOR_SCOPES
)


@dataclass(frozen=True)
class Client(ClientMixin):
    """A live client (not revoked, its merchant not suspended) and the digests of the secrets
    it may use now: the current one and any still inside a rotation's grace period."""

    pk: int
    client_id: str
    name: str
    kind: str
    merchant_id: int | None
    scopes: frozenset[str]
    redirect_uris: tuple[str, ...]
    secret_hashes: tuple[str, ...]

    def allowed_scopes(self, grant_type: str) -> frozenset[str]:
        """What this client may be granted by `grant_type`: member scopes only when a member
        consented (SPEC 3.2), everything else only by client_credentials."""
        if grant_type in MEMBER_GRANTS:
            return self.scopes & scope_sets.MEMBER_SCOPES
        return self.scopes - scope_sets.MEMBER_SCOPES

    def grant_scope(self, grant_type: str, requested: str | None) -> str:
        """The scope to grant: what was asked for, or when nothing was, all the client may
        have by this grant. Asking for more is `invalid_scope`."""
        allowed = self.allowed_scopes(grant_type)
        wanted = scope_sets.parse(requested) or allowed
        if not wanted or not wanted <= allowed:
            raise InvalidScopeError(
                f"this client may ask for {scope_sets.render(allowed) or 'no scope'}"
            )
        return scope_sets.render(wanted)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Only an unambiguous one; with several registered, the request must name one.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        # Authlib asks this at the authorization endpoint, which serves only member scopes.
        try:
            return self.grant_scope("authorization_code", scope)
        except InvalidScopeError:
            return None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact match, never a prefix

    def check_client_secret(self, client_secret: str) -> bool:
        offered = digest(client_secret)
        # Compare with every live digest, without stopping early.
        matches = [hmac.compare_digest(offered, known) for known in self.secret_hashes]
        return any(matches)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and self.check_grant_type("authorization_code")

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type in MEMBER_GRANTS:
            return bool(self.allowed_scopes(grant_type) and self.redirect_uris)
        return grant_type == "client_credentials" and bool(self.allowed_scopes(grant_type))


@dataclass(frozen=True)
class Member:
    """The resource owner Authlib calls the user."""

    id: int
    public_id: str
    email: str | None = None


@dataclass(frozen=True)
class Token(TokenMixin):
    """One issued token row, found by its access or its refresh token (`found_by`)."""

    pk: int
    found_by: str  # "access_token" or "refresh_token"
    client_pk: int
    client_id: str
    client_live: bool
    merchant_id: int | None
    member_id: int | None
    member_public_id: str | None
    scope: str
    issued_at: datetime
    expires_at: datetime
    refresh_expires_at: datetime | None
    revoked_at: datetime | None
    now: datetime

    def check_client(self, client: Client) -> bool:
        return self.client_pk == client.pk

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int((self.expires_at - self.issued_at).total_seconds())

    @property
    def ends_at(self) -> datetime:
        if self.found_by == "refresh_token":
            return self.refresh_expires_at or self.issued_at
        return self.expires_at

    def is_expired(self) -> bool:
        return self.ends_at <= self.now

    def is_revoked(self) -> bool:
        # A revoked client's tokens, or a suspended merchant's, are dead too.
        return self.revoked_at is not None or not self.client_live

    def get_user(self) -> Member | None:
        if self.member_id is None or self.member_public_id is None:
            return None
        return Member(self.member_id, self.member_public_id)

    def get_client(self) -> Any:
        return find_client(db.session(), self.client_id, self.now)


@dataclass(frozen=True)
class Code(AuthorizationCodeMixin):
    pk: int
    member_id: int
    redirect_uri: str
    scope: str
    code_challenge: str
    code_challenge_method: str

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri or None

    def get_scope(self) -> str:
        return self.scope


def find_client(session: Session, client_id: str, now: datetime) -> Client | None:
    """The live client with this id, or None (unknown, revoked, or its merchant suspended).
    Every way a client id arrives (HTTP Basic, the form body, the query string) comes here:
    what cannot be a client id is unknown without a query."""
    if not is_public_id(client_id, "cli"):
        return None
    rows = session.execute(
        select(
            clients.c.id,
            clients.c.client_id,
            clients.c.name,
            clients.c.kind,
            clients.c.merchant_id,
            clients.c.scopes,
            clients.c.redirect_uris,
            secrets_.c.secret_hash,
        )
        .outerjoin(
            secrets_,
            and_(
                secrets_.c.client_id == clients.c.id,
                or_(secrets_.c.expires_at.is_(None), secrets_.c.expires_at > now),
            ),
        )
        .where(
            clients.c.client_id == client_id,
            clients.c.revoked_at.is_(None),
            clients.c.disabled.is_(False),
        )
    ).all()
    if not rows:
        return None
    first = rows[0]
    return Client(
        pk=first.id,
        client_id=first.client_id,
        name=first.name,
        kind=first.kind,
        merchant_id=first.merchant_id,
        scopes=scope_sets.parse(first.scopes),
        redirect_uris=tuple(first.redirect_uris or ()),
        secret_hashes=tuple(row.secret_hash for row in rows if row.secret_hash),
    )


def token_query() -> Any:
    return (
        select(
            tokens.c.id,
            tokens.c.access_token_hash,
            tokens.c.client_id.label("client_pk"),
            clients.c.client_id,
            (clients.c.revoked_at.is_(None) & clients.c.disabled.is_(False)).label("client_live"),
            tokens.c.merchant_id,
            tokens.c.member_id,
            members.c.public_id.label("member_public_id"),
            tokens.c.scope,
            tokens.c.issued_at,
            tokens.c.expires_at,
            tokens.c.refresh_expires_at,
            tokens.c.revoked_at,
        )
        .join(clients, clients.c.id == tokens.c.client_id)
        .outerjoin(members, members.c.id == tokens.c.member_id)
    )


def token_view(row: Any, found_by: str, now: datetime) -> Token:
    return Token(
        pk=row.id,
        found_by=found_by,
        client_pk=row.client_pk,
        client_id=row.client_id,
        client_live=bool(row.client_live),
        merchant_id=row.merchant_id,
        member_id=row.member_id,
        member_public_id=row.member_public_id,
        scope=row.scope,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        refresh_expires_at=row.refresh_expires_at,
        revoked_at=row.revoked_at,
        now=now,
    )


def find_token(session: Session, secret: str, now: datetime) -> Token | None:
    """The token row an access or refresh token names, live or not."""
    hashed = digest(secret)
    row = session.execute(
        token_query().where(
            or_(tokens.c.access_token_hash == hashed, tokens.c.refresh_token_hash == hashed)
        )
    ).one_or_none()
    if row is None:
        return None
    found_by = "access_token" if row.access_token_hash == hashed else "refresh_token"
    return token_view(row, found_by, now)


def revoke_token(session: Session, token_pk: int, now: datetime) -> None:
    """An access token and its refresh token are one grant: both stop working."""
    session.execute(
        update(tokens)
        .where(tokens.c.id == token_pk, tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_member_grants(session: Session, member_id: int, now: datetime) -> int:
    """Everything a member granted partners' apps stops working at once: every access and
    refresh token of the member (one row each grant), and every authorization code not yet
    exchanged (marked used). Across every merchant: the caller acts as the system. Returns the
    tokens revoked."""
    result = session.execute(
        update(tokens)
        .where(tokens.c.member_id == member_id, tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    session.execute(
        update(codes)
        .where(codes.c.member_id == member_id, codes.c.used_at.is_(None))
        .values(used_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def revoke_family(session: Session, token_pk: int, family: str | None, now: datetime) -> int:
    """Revoke every live token of a refresh family (or the token alone, without one): each
    access and refresh token descended from the same authorization. Returns how many."""
    which = tokens.c.family == family if family is not None else tokens.c.id == token_pk
    result = session.execute(
        update(tokens).where(which, tokens.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def find_member(session: Session, member: int | str) -> Member | None:
    """An active member, by id or public id (a blocked one can neither consent nor keep
    refreshing)."""
    key = members.c.public_id if isinstance(member, str) else members.c.id
    row = session.execute(
        select(members.c.id, members.c.public_id, members.c.email).where(
            key == member, members.c.status == "active"
        )
    ).one_or_none()
    return None if row is None else Member(row.id, row.public_id, row.email)


def authenticate_member(session: Session, email: str, password: str) -> Member | None:
    """The active member with this email and password, or None: the members' own check
    (`coalition.members.credentials`), which the member site's sign-in shares."""
    signed_in = credentials.authenticate(session, email, password)
    return None if signed_in is None else find_member(session, signed_in.id)


def merchant_name(session: Session, merchant_id: int | None) -> str | None:
    """The merchant's name and public id, for the consent page and introspection. The
    merchants table belongs to the `merchants` package, which the core does not import: it is
    read through the shared metadata."""
    row = _merchant(session, merchant_id)
    return None if row is None else row.name


def merchant_public_id(session: Session, merchant_id: int | None) -> str | None:
    row = _merchant(session, merchant_id)
    return None if row is None else row.public_id


def _merchant(session: Session, merchant_id: int | None) -> Any:
    if merchant_id is None:
        return None
    merchants = Base.metadata.tables["merchants"]
    return session.execute(
        select(merchants.c.name, merchants.c.public_id).where(merchants.c.id == merchant_id)
    ).one_or_none()
