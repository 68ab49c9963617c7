"""The OpenAPI document (SPEC 3.1) describes every API route, with the OAuth scopes it needs."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from coalition.web.access import policy_of


def test_every_api_route_is_in_the_openapi_document_with_its_scopes(
    app: Flask, client: FlaskClient
) -> None:
    document = client.get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.")
    missing, unsecured = [], []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.endpoint.startswith("api-docs."):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            operation = document["paths"].get(path, {}).get(method.lower())
            if operation is None:
                missing.append(f"{method} {path}")
                continue
            policy = policy_of(app, rule.endpoint)
            assert policy is not None
            if not policy.public:
                documented = {
                    s
                    for alternative in operation.get("security", [])
                    for s in alternative["oauth2"]
                }
                declared = {s for scopes in policy.scopes_by_kind.values() for s in scopes}
                if documented != declared:
                    unsecured.append(f"{method} {path}: {documented} != {declared}")
    assert missing == []
    assert unsecured == []


def test_the_docs_page_is_served(client: FlaskClient) -> None:
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert b"swagger-ui" in response.data
