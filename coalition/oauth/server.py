"""The OAuth 2 authorization server (SPEC 3.2) on Authlib: the grants, the revocation and
introspection endpoints, and small adapters that give Authlib its Client, Token and
AuthorizationCode interfaces over our own rows, which keep every secret as a SHA-256 digest.

- `client_credentials`: a merchant's server or till, or the operator. It gets the client's
  merchant scopes (or `operator`), never a member scope.
- `authorization_code` with PKCE, S256 only and always required: a merchant's app acting for a
  member, who signs in and consents at /oauth/authorize (views.py). It gets member scopes only.
- `refresh_token`: rotates; the old refresh token (and its access token) stop working.

Every look-up here runs as the system tenant: nobody is known until the client authenticates.
The blueprint enters it at the start of each /oauth request (views.py)."""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskAuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    InsecureTransportError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint as BaseRevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as BaseIntrospectionEndpoint
from flask import Request
from flask import request as flask_request
from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from coalition import clock
from coalition.database import table
from coalition.extensions import Base, db
from coalition.members.models import Member as MemberRow
from coalition.oauth import scopes as scope_sets
from coalition.oauth.models import AuthorizationCode, ClientSecret, OAuthClient, OAuthToken
from coalition.oauth.tokens import ACCESS_TOKEN_LIFETIME, digest, new_secret, store_token

clients = table(OAuthClient)
secrets_ = table(ClientSecret)
tokens = table(OAuthToken)
codes = table(AuthorizationCode)
members = table(MemberRow)

CODE_LIFETIME = timedelta(minutes=10)  # RFC 6749 4.1.2: a code lives 10 minutes at most
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
    """The live client with this id, or None (unknown, revoked, or its merchant suspended)."""
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


def _token_query() -> Any:
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


def _token(row: Any, found_by: str, now: datetime) -> Token:
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
        _token_query().where(
            or_(tokens.c.access_token_hash == hashed, tokens.c.refresh_token_hash == hashed)
        )
    ).one_or_none()
    if row is None:
        return None
    found_by = "access_token" if row.access_token_hash == hashed else "refresh_token"
    return _token(row, found_by, now)


def revoke_token(session: Session, token_pk: int, now: datetime) -> None:
    """An access token and its refresh token are one grant: both stop working."""
    session.execute(
        update(tokens)
        .where(tokens.c.id == token_pk, tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


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


@cache
def _decoy_hash() -> str:
    return generate_password_hash("not anybody's password")


def authenticate_member(session: Session, email: str, password: str) -> Member | None:
    """The active member with this email and password, or None. An unknown email costs as much
    time as a wrong password, so the answer tells nobody which emails are members."""
    row = session.execute(
        select(members.c.id, members.c.password_hash, members.c.status).where(
            members.c.email == email.strip().lower()
        )
    ).one_or_none()
    known_hash = row.password_hash if row is not None and row.password_hash else None
    if not check_password_hash(known_hash or _decoy_hash(), password):
        return None
    if row is None or known_hash is None or row.status != "active":
        return None
    return find_member(session, row.id)


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


def generate_token(
    grant_type: str,
    client: Client,
    user: Member | None = None,
    scope: str | None = None,
    expires_in: int | None = None,
    include_refresh_token: bool = True,
) -> dict[str, Any]:
    """Authlib's token generator: opaque random tokens (`at_…`, `rt_…`), an hour's life, and
    the scope this grant may give this client."""
    token: dict[str, Any] = {
        "token_type": "Bearer",
        "access_token": new_secret("at_"),
        "expires_in": expires_in or int(ACCESS_TOKEN_LIFETIME.total_seconds()),
        "scope": client.grant_scope(grant_type, scope),
    }
    if include_refresh_token:
        token["refresh_token"] = new_secret("rt_")
    return token


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def generate_authorization_code(self) -> str:
        return new_secret("ac_")

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        client: Client = request.client
        now = clock.utcnow()
        db.session.execute(
            insert(codes).values(
                code_hash=digest(code),
                client_id=client.pk,
                merchant_id=client.merchant_id,
                member_id=request.user.id,
                # As the request named it: the token request must then name the same.
                redirect_uri=request.payload.redirect_uri or "",
                scope=request.scope,
                code_challenge=request.payload.data["code_challenge"],
                code_challenge_method=request.payload.data["code_challenge_method"],
                auth_time=now,
                expires_at=now + CODE_LIFETIME,
            )
        )

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        now = clock.utcnow()
        session = db.session()
        row = session.execute(
            select(codes)
            .where(codes.c.code_hash == digest(code), codes.c.client_id == client.pk)
            .with_for_update()  # two redemptions of one code at once: the second waits, fails
        ).one_or_none()
        if row is None or row.expires_at <= now:
            return None
        if row.used_at is not None:
            # RFC 6749 4.1.2: a code used twice is refused, and what it gave is revoked. Tokens
            # do not record their code: every token of this app for this member since the code
            # was issued goes (at worst a sibling authorization, which the member can redo).
            session.execute(
                update(tokens)
                .where(
                    tokens.c.client_id == row.client_id,
                    tokens.c.member_id == row.member_id,
                    tokens.c.issued_at >= row.auth_time,
                    tokens.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
            return None
        return Code(
            pk=row.id,
            member_id=row.member_id,
            redirect_uri=row.redirect_uri,
            scope=row.scope,
            code_challenge=row.code_challenge,
            code_challenge_method=row.code_challenge_method,
        )

    def delete_authorization_code(self, authorization_code: Code) -> None:
        # Kept, marked used, so that a second use is recognised as a replay.
        db.session.execute(
            update(codes).where(codes.c.id == authorization_code.pk).values(used_at=clock.utcnow())
        )

    def authenticate_user(self, authorization_code: Code) -> Member | None:
        return find_member(db.session(), authorization_code.member_id)


class S256CodeChallenge(CodeChallenge):
    """PKCE (RFC 7636) on every authorization request, S256 only: Authlib's own extension
    requires it only of public clients and accepts `plain`, which proves nothing against an
    attacker who saw the authorization request."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send a code_challenge (S256)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: each refresh token works once

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        now = clock.utcnow()
        row = db.session.execute(
            _token_query()
            .where(tokens.c.refresh_token_hash == digest(refresh_token))
            .with_for_update(of=tokens)  # two refreshes at once: the second waits, then fails
        ).one_or_none()
        if row is None:
            return None
        token = _token(row, "refresh_token", now)
        return None if token.is_revoked() or token.is_expired() else token

    def authenticate_user(self, refresh_token: Token) -> Member | None:
        if refresh_token.member_id is None:
            return None
        return find_member(db.session(), refresh_token.member_id)

    def revoke_old_credential(self, refresh_token: Token) -> None:
        revoke_token(db.session(), refresh_token.pk, clock.utcnow())


class RevocationEndpoint(BaseRevocationEndpoint):
    """RFC 7009. Another client's token is answered like an unknown one (200, nothing done):
    a client learns nothing about tokens that are not its own (SPEC 3.2)."""

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def authenticate_token(self, request: OAuth2Request, client: Client) -> Token | None:
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        return token if token is not None and token.check_client(client) else None

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return find_token(db.session(), token_string, clock.utcnow())

    def revoke_token(self, token: Token, request: OAuth2Request) -> None:
        revoke_token(db.session(), token.pk, clock.utcnow())


class IntrospectionEndpoint(BaseIntrospectionEndpoint):
    """RFC 7662. A client may introspect the tokens of its own tenant only; any other token is
    `{"active": false}`, as if it did not exist."""

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return find_token(db.session(), token_string, clock.utcnow())

    def check_permission(self, token: Token, client: Client, request: OAuth2Request) -> bool:
        return token.merchant_id == client.merchant_id

    def introspect_token(self, token: Token) -> dict[str, Any]:
        return {
            "active": True,
            "scope": token.scope,
            "client_id": token.client_id,
            "token_type": "Bearer" if token.found_by == "access_token" else "refresh_token",
            "exp": int(token.ends_at.timestamp()),
            "iat": int(token.issued_at.timestamp()),
            "sub": token.member_public_id,
            "merchant": merchant_public_id(db.session(), token.merchant_id),
        }


def is_secure_transport(url: str) -> bool:
    """Authlib's own rule (`authlib.common.security.is_secure_transport`): https, or plain http
    to a loopback host (RFC 8252 7.3), but without its AUTHLIB_INSECURE_TRANSPORT escape."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class TransportCheckedRequest(FlaskOAuth2Request):
    """Authlib's request, with the transport decided by this app's COALITION_ENV.

    How Authlib decides: `OAuth2Request.__init__` calls `InsecureTransportError.check(uri)`,
    which allows https, http to a loopback host, or anything at all when the *process*
    environment has AUTHLIB_INSECURE_TRANSPORT set. That variable is global to the process and
    invisible in our settings: one stray export would quietly allow plain http in production.

    So we never set it and make it irrelevant: this class checks the request URL itself (plain
    http allowed only when `allow_http`, i.e. COALITION_ENV is development or testing; in
    production Authlib's rule without the escape) and hands Authlib the https form of the
    URL, which Authlib uses for nothing but that check. Behind a TLS-terminating proxy,
    production needs werkzeug's ProxyFix so that `request.url` says https."""

    def __init__(self, request: Request, allow_http: bool) -> None:
        url = request.url
        if not allow_http and not is_secure_transport(url):
            raise InsecureTransportError()
        checked = "https://" + url.removeprefix("http://") if url.startswith("http://") else url
        OAuth2Request.__init__(self, method=request.method, uri=checked, headers=request.headers)
        self.uri = url
        self._request = request
        self.payload = FlaskOAuth2Payload(request)


class AuthorizationServer(FlaskAuthorizationServer):
    """One per app (`build(app)`), since the transport rule depends on the app's settings."""

    def __init__(self, allow_http: bool) -> None:
        super().__init__()
        self.allow_http = allow_http
        self.scopes_supported = ALL_SCOPES
        self.register_token_generator("default", generate_token)
        self.register_grant(ClientCredentialsGrant)
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_endpoint(RevocationEndpoint)
        self.register_endpoint(IntrospectionEndpoint)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return TransportCheckedRequest(flask_request, self.allow_http)

    def query_client(self, client_id: str) -> Client | None:
        return find_client(db.session(), client_id, clock.utcnow())

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        client: Client = request.client
        store_token(
            db.session(),
            client_pk=client.pk,
            merchant_id=client.merchant_id,
            member_id=request.user.id if request.user else None,
            scope=token["scope"],
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            expires_in=timedelta(seconds=token["expires_in"]),
            now=clock.utcnow(),
        )


def metadata(issuer: str) -> dict[str, Any]:
    """The RFC 8414 document of the server at `issuer` (scheme and host, no trailing slash)."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "grant_types_supported": GRANT_TYPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ALL_SCOPES,
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "service_documentation": f"{issuer}/api/v1/docs",
    }
