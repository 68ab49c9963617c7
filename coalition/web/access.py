"""Access policies. Every view declares one, and a test fails any route that does not:

- `public(limit)`: anyone, rate-limited per client address;
- `require(*scopes, kinds=...)`: a live bearer token of one of `kinds` ("merchant", "member",
  "operator") holding every scope in `scopes`, rate-limited per OAuth client. The request then
  acts as the token's tenant, in the application (`principal().merchant_id`...) and in the
  database (row-level security).

Refusals are problems: 401 `invalid_token` (missing, unknown, expired, revoked, or a suspended
merchant's), 403 `wrong_token_kind` and 403 `insufficient_scope`, 429 `rate_limited`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app, g, request
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from coalition import audit, clock, tenancy
from coalition.errors import CoalitionError
from coalition.extensions import db
from coalition.oauth import tokens
from coalition.oauth.tokens import Principal

F = TypeVar("F", bound=Callable[..., Any])
KINDS = ("merchant", "member", "operator")


class InvalidToken(CoalitionError):
    status, code, title = 401, "invalid_token", "Invalid or missing access token"


class WrongTokenKind(CoalitionError):
    status, code, title = 403, "wrong_token_kind", "This route is not for this kind of token"


class InsufficientScope(CoalitionError):
    status, code, title = 403, "insufficient_scope", "The token lacks a scope this route needs"


class RateLimited(CoalitionError):
    status, code, title = 429, "rate_limited", "Too many requests"


@dataclass(frozen=True)
class Policy:
    """Who may call a route: per token kind, the scopes it must hold. No kinds: public."""

    scopes_by_kind: dict[str, tuple[str, ...]]
    limit: str | None = None

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.scopes_by_kind)

    @property
    def public(self) -> bool:
        return not self.scopes_by_kind


PUBLIC = Policy({})


def policy_of(app: Any, endpoint: str) -> Policy | None:
    """The access policy an endpoint declared, or None (which a test refuses)."""
    if endpoint in app.extensions["coalition.public_endpoints"]:
        return PUBLIC
    return getattr(app.view_functions[endpoint], "access_policy", None)


def _hit(limit: str, *key: str) -> None:
    item = parse(limit)
    if not current_app.extensions["coalition.limiter"].hit(item, *key):
        raise RateLimited(f"at most {limit}; try again later", limit=limit)


def principal() -> Principal:
    """The caller of the current request (only inside a `require`d view)."""
    return g.principal


def operator_actor() -> audit.Actor:
    """The caller of an operator route, as the audit log names it."""
    return audit.Actor.operator_client(principal().client_id)


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise InvalidToken("send an access token: Authorization: Bearer <token>")
    return token.strip()


def require(
    *scopes: str,
    kinds: tuple[str, ...] = ("merchant",),
    by_kind: dict[str, tuple[str, ...]] | None = None,
) -> Callable[[F], F]:
    """A live token of one of `kinds`, holding every scope in `scopes`; or, where each kind
    needs its own scopes, `by_kind` (a redemption: a merchant's `redemptions:write` or a
    member's `redeem`)."""
    needs = dict(by_kind) if by_kind is not None else dict.fromkeys(kinds, tuple(scopes))
    unknown = set(needs) - set(KINDS)
    if unknown or not needs:
        raise ValueError(f"unknown token kinds {unknown}")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            session, bearer = db.session(), _bearer()
            found = tokens.verified(session, bearer, clock.utcnow())
            if found is None:
                raise InvalidToken("the access token is unknown, expired or revoked")
            try:
                tenancy.enter(session, found.tenant)
                # The transaction starts (or has started) as the token's tenant, which confirms
                # the token is still live: a cached check never outlives a revocation.
                session.connection()
            except tenancy.TokenNotLive:  # the same 401 `invalid_token` problem
                tokens.forget(bearer)
                raise
            if found.kind not in needs:
                raise WrongTokenKind(
                    f"this route takes a {' or '.join(needs)} token, not a {found.kind} token"
                )
            missing = set(needs[found.kind]) - found.scopes
            if missing:
                raise InsufficientScope(
                    f"the token lacks the scope {' '.join(sorted(missing))}",
                    required=sorted(needs[found.kind]),
                )
            if current_app.config["RATELIMIT_ENABLED"]:
                _hit(current_app.config["RATE_LIMIT_CLIENT"], "client", found.client_id)
            g.principal = found
            return view(*args, **kwargs)

        guarded.access_policy = Policy(needs)  # type: ignore[attr-defined]
        _document_security(guarded, needs)
        return guarded  # type: ignore[return-value]

    return decorate


def public(limit: str | None = None) -> Callable[[F], F]:
    """A route anyone may call; `limit` (e.g. "10/minute", or a config key such as
    "RATE_LIMIT_SIGNUP") caps calls per client address."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def open_view(*args: Any, **kwargs: Any) -> Any:
            if limit and current_app.config["RATELIMIT_ENABLED"]:
                rate = current_app.config.get(limit, limit)
                _hit(rate, "public", request.endpoint or "", request.remote_addr or "-")
            return view(*args, **kwargs)

        open_view.access_policy = Policy({}, limit)  # type: ignore[attr-defined]
        return open_view  # type: ignore[return-value]

    return decorate


def mark_public(app: Any, endpoint: str) -> None:
    """Declare public an endpoint made elsewhere (the OpenAPI document, static files)."""
    app.extensions["coalition.public_endpoints"].add(endpoint)


def _document_security(view: Any, needs: dict[str, tuple[str, ...]]) -> None:
    """Tell the OpenAPI document which OAuth scopes the route needs (any one of the sets)."""
    apidoc = view.__dict__.setdefault("_apidoc", {})
    manual = apidoc.setdefault("manual_doc", {})
    alternatives = dict.fromkeys(tuple(scopes) for scopes in needs.values())
    manual["security"] = [{"oauth2": list(scopes)} for scopes in alternatives]


def init_app(app: Any) -> None:
    # Counters live in Redis when there is one (shared by every process), else in memory.
    storage = storage_from_string(app.config.get("REDIS_URL") or "memory://")
    app.extensions["coalition.limiter"] = FixedWindowRateLimiter(storage)
    app.extensions["coalition.public_endpoints"] = set()

    @app.before_request
    def _nobody_yet() -> None:
        # Every request starts as nobody; `require` names its tenant after the token check.
        g.tenant_token = tenancy.begin_request()

    @app.teardown_request
    def _forget_tenant(_exc: BaseException | None) -> None:
        token = g.pop("tenant_token", None)
        if token is not None:
            tenancy.end_request(token)
