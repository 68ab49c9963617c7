"""Every route says who may call it, and every route refuses the tokens it is not for
(QUALITY S3): none, expired, revoked, lacking a scope, or of the wrong kind (member, merchant,
operator). The routes are read from the app's URL map, so a new route is covered the day it is
added, and one that declares no access policy fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from coalition import clock, tenancy
from coalition.database import table
from coalition.oauth import scopes
from coalition.oauth.models import OAuthToken
from coalition.web.access import Policy, policy_of
from tests import factories

IGNORED_METHODS = {"HEAD", "OPTIONS"}


@dataclass(frozen=True)
class Route:
    rule: str
    method: str
    endpoint: str
    policy: Policy

    @property
    def url(self) -> str:
        # Any value will do: the token is checked before the route looks anything up.
        return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"x_\1", self.rule)

    def __str__(self) -> str:
        return f"{self.method} {self.rule}"


def _routes(app: Flask) -> Iterator[tuple[str, str, str]]:
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - IGNORED_METHODS):
            yield rule.rule, method, rule.endpoint


def test_every_route_declares_an_access_policy(app: Flask) -> None:
    undeclared = [
        f"{method} {rule} ({endpoint})"
        for rule, method, endpoint in _routes(app)
        if policy_of(app, endpoint) is None
    ]
    assert undeclared == []


def _guarded(app: Flask) -> list[Route]:
    found = []
    for rule, method, endpoint in _routes(app):
        policy = policy_of(app, endpoint)
        if policy is not None and not policy.public:
            found.append(Route(rule, method, endpoint, policy))
    return found


def test_the_api_has_guarded_routes_for_every_kind_of_token(app: Flask) -> None:
    kinds = {kind for route in _guarded(app) for kind in route.policy.kinds}
    assert kinds == {"merchant", "member", "operator"}


@pytest.fixture
def tokens(session: Session) -> dict[str, dict[str, str]]:
    """A live token of each kind with every scope its kind may hold, and spoiled ones."""
    shop = factories.merchant(session)
    member = factories.member(session)
    every_merchant_scope = scopes.render(scopes.MERCHANT_SCOPES)
    every_member_scope = scopes.render(scopes.MEMBER_SCOPES)
    merchant_client = factories.client(session, shop, every_merchant_scope)["client_id"]
    revoked = factories.bearer(session, merchant_client, every_merchant_scope)
    with tenancy.acting_as(tenancy.SYSTEM, session):
        session.execute(update(table(OAuthToken)).values(revoked_at=clock.utcnow()))
    return {
        "merchant": factories.bearer(session, merchant_client, every_merchant_scope),
        "member": factories.member_headers(session, shop, member, every_member_scope),
        "operator": factories.operator_headers(session),
        "expired": factories.bearer(
            session,
            merchant_client,
            every_merchant_scope,
            now=clock.utcnow() - timedelta(hours=2),
        ),
        "revoked": revoked,
        # A real token of each kind holding a scope no route asks for alone.
        "merchant-without-scopes": factories.bearer(session, merchant_client, "audience:read"),
    }


def _call(client: FlaskClient, route: Route, headers: dict[str, str] | None) -> tuple[int, str]:
    response = client.open(route.url, method=route.method, headers=headers or {}, json={})
    assert response.mimetype == "application/problem+json", f"{route}: {response.data[:200]!r}"
    return response.status_code, response.json["code"]


def test_guarded_routes_refuse_a_missing_expired_or_revoked_token(
    app: Flask, client: FlaskClient, tokens: dict[str, dict[str, str]]
) -> None:
    wrong = {}
    for route in _guarded(app):
        for name in ("none", "expired", "revoked"):
            got = _call(client, route, tokens.get(name))
            if got != (401, "invalid_token"):
                wrong[f"{route} with {name}"] = got
    assert wrong == {}


def test_member_routes_refuse_a_member_token_without_their_scope(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    shop, member = factories.merchant(session), factories.member(session)
    only_balance = factories.member_headers(session, shop, member, "balance:read")
    only_redeem = factories.member_headers(session, shop, member, "redeem")
    wrong = {}
    for route in _guarded(app):
        needs = set(route.policy.scopes_by_kind.get("member", ()))
        for headers, held in ((only_balance, {"balance:read"}), (only_redeem, {"redeem"})):
            if needs - held:
                got = _call(client, route, headers)
                if got != (403, "insufficient_scope"):
                    wrong[f"{route} with {held}"] = got
    assert wrong == {}


def test_guarded_routes_refuse_tokens_of_another_kind(
    app: Flask, client: FlaskClient, tokens: dict[str, dict[str, str]]
) -> None:
    wrong = {}
    for route in _guarded(app):
        for kind in {"merchant", "member", "operator"} - set(route.policy.kinds):
            got = _call(client, route, tokens[kind])
            if got != (403, "wrong_token_kind"):
                wrong[f"{route} with a {kind} token"] = got
    assert wrong == {}


def test_merchant_routes_refuse_a_token_without_their_scope(
    app: Flask, client: FlaskClient, tokens: dict[str, dict[str, str]]
) -> None:
    wrong = {}
    checked = 0
    for route in _guarded(app):
        needs = set(route.policy.scopes_by_kind.get("merchant", ()))
        if needs and needs != {"audience:read"}:
            checked += 1
            got = _call(client, route, tokens["merchant-without-scopes"])
            if got != (403, "insufficient_scope"):
                wrong[str(route)] = got
    assert wrong == {}
    assert checked > 0


@pytest.mark.both_backends
def test_a_token_revoked_after_this_worker_checked_it_is_refused_from_then_on(
    client: FlaskClient, session: Session
) -> None:
    """A worker remembers the tokens it verified (`tokens.verified`), yet no request succeeds
    with a token after its revocation has been answered: the statement that sets the request's
    tenant confirms the token is still live."""
    shop = factories.merchant(session)
    till = factories.client(session, shop, "transactions:read")
    headers = factories.bearer(session, till["client_id"], "transactions:read")
    other = factories.bearer(session, till["client_id"], "transactions:read")
    assert client.get("/api/v1/transactions", headers=headers).status_code == 200
    assert client.get("/api/v1/transactions", headers=other).status_code == 200

    revoked = client.post(
        "/oauth/revoke",
        data={
            "token": headers["Authorization"].removeprefix("Bearer "),
            "client_id": till["client_id"],
            "client_secret": till["client_secret"],
        },
    )

    assert revoked.status_code == 200
    refused = client.get("/api/v1/transactions", headers=headers)
    assert (refused.status_code, refused.json["code"]) == (401, "invalid_token")
    # The other token of the same client was not revoked and still works.
    assert client.get("/api/v1/transactions", headers=other).status_code == 200
