"""The OAuth 2 authorization server (SPEC 3.2) on Authlib: the grants, the revocation and
introspection endpoints, and small adapters that give Authlib its Client, Token and
AuthorizationCode interfaces over our own rows, which keep every secret as a SHA-256 digest.

- `client_credentials`: a merchant's server or till, or the operator. It gets the client's
  merchant scopes (or `operator`), never a member scope.
- `authorization_code` with PKCE, S256 only and always required: a merchant's app acting for a
  member, who signs in and consents at /oauth/authorize (views.py). It gets member scopes only.
- `refresh_token`: rotates; the old refresh token (and its access token) stop working, and
  one presented again revokes its whole family (RFC 9700 4.14.2, decision 214).

Every look-up here runs as the system tenant: nobody is known until the client authenticates.
The blueprint enters it at the start of each /oauth request (views.py). The adapters and
look-ups are in lookups.py."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskAuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from authlib.oauth2.rfc6749 import (
    InsecureTransportError,
    InvalidClientError,
    InvalidRequestError,
    OAuth2Request,
    UnsupportedResponseTypeError,
    grants,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint as BaseRevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as BaseIntrospectionEndpoint
from flask import Request
from flask import request as flask_request
from sqlalchemy import func, insert, select, update

from coalition import clock
from coalition.extensions import db
from coalition.oauth.lookups import (
    ALL_SCOPES,
    AUTH_METHODS,
    GRANT_TYPES,
    Client,
    Code,
    Member,
    Token,
    codes,
    find_client,
    find_member,
    find_token,
    merchant_public_id,
    revoke_family,
    revoke_token,
    token_query,
    token_view,
    tokens,
)
from coalition.oauth.tokens import ACCESS_TOKEN_LIFETIME, digest, new_secret, store_token

log = logging.getLogger(__name__)

CODE_LIFETIME = timedelta(minutes=10)  # RFC 6749 4.1.2: a code lives 10 minutes at most


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
        session = db.session()
        row = session.execute(
            token_query()
            .add_columns(tokens.c.family, tokens.c.rotated_at)
            .where(tokens.c.refresh_token_hash == digest(refresh_token))
            .with_for_update(of=tokens)  # two refreshes at once: the second waits, then fails
        ).one_or_none()
        if row is None:
            return None
        if row.rotated_at is not None:
            # RFC 9700 4.14.2: a refresh token already exchanged, presented again. Either the
            # client or a thief holds a copy, and the server cannot tell which: every token of
            # the family goes, the newest access token with them; the member signs in again.
            revoked = revoke_family(session, row.id, row.family, now)
            log.warning(
                "refresh token reused: its family is revoked",
                extra={
                    "client_id": row.client_id,
                    "member_id": row.member_public_id,
                    "token_family": row.family,
                    "tokens_revoked": revoked,
                },
            )
            return None
        token = token_view(row, "refresh_token", now)
        if token.is_revoked() or token.is_expired():
            return None
        self.family = row.family
        return token

    def authenticate_user(self, refresh_token: Token) -> Member | None:
        if refresh_token.member_id is None:
            return None
        return find_member(db.session(), refresh_token.member_id)

    def save_token(self, token: dict[str, Any]) -> None:
        # The new token joins the family of the one it is refreshed from.
        self.request.token_family = getattr(self, "family", None)
        super().save_token(token)

    def revoke_old_credential(self, refresh_token: Token) -> None:
        now = clock.utcnow()
        db.session.execute(
            update(tokens)
            .where(tokens.c.id == refresh_token.pk)
            .values(revoked_at=func.coalesce(tokens.c.revoked_at, now), rotated_at=now)
        )


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


def _check_basic_credentials(header: str) -> None:
    """HTTP Basic credentials must be base64 of UTF-8 text (RFC 7617): Authlib decodes them
    without catching a decoding error, so bytes that are not UTF-8 are refused here, as an
    unknown client is (401, with the scheme to use)."""
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return
    try:
        base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidClientError(
            status_code=401, description="the Basic credentials are not base64 of UTF-8 text"
        ) from exc


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
        _check_basic_credentials(request.headers.get("Authorization", ""))
        checked = "https://" + url.removeprefix("http://") if url.startswith("http://") else url
        OAuth2Request.__init__(self, method=request.method, uri=checked, headers=request.headers)
        self.uri = url
        self._request = request
        self.payload = FlaskOAuth2Payload(request)


class UnsupportedResponseType(UnsupportedResponseTypeError):
    """Authlib's error for a response_type other than `code`, in one readable sentence: its
    own swaps its arguments and reads "response_type=The response type 'None' is not supported
    by the server. is not supported". The value is repeated only when it is plain (RFC 6749
    allows printable ASCII without quotes or backslashes in `error_description`)."""

    def __init__(self, response_type: str | None, redirect_uri: str | None) -> None:
        if not response_type:
            sentence = "the link has no response_type; send response_type=code."
        elif re.fullmatch(r"[A-Za-z0-9_ ]{1,40}", response_type):
            sentence = f"response_type {response_type} is not supported; send response_type=code."
        else:
            sentence = "this response_type is not supported; send response_type=code."
        super().__init__(response_type, description=sentence, redirect_uri=redirect_uri)

    def get_error_description(self) -> str:
        return str(self.description)


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

    def get_authorization_grant(self, request: OAuth2Request) -> Any:
        try:
            return super().get_authorization_grant(request)
        except UnsupportedResponseTypeError as error:
            raise UnsupportedResponseType(
                request.payload.response_type, error.redirect_uri
            ) from None

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
            family=getattr(request, "token_family", None),
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
