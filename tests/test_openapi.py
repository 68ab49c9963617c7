"""The OpenAPI document (SPEC 3.1) describes every API route, with the OAuth scopes it needs."""

from __future__ import annotations

import re

import jsonschema_rs
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


def _operations(document: dict) -> list[tuple[str, str, dict]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "put", "post", "delete", "patch"}
    ]


def _resolve(document: dict, item: dict) -> dict:
    while "$ref" in item:
        *_, kind, name = item["$ref"].split("/")
        item = document["components"][kind][name]
    return item


def test_every_error_response_is_documented_as_the_problem_the_server_sends(
    client: FlaskClient,
) -> None:
    """SPEC 3.1: errors are RFC 9457 problems. The document says so for every refusal of every
    operation, and names those every operation of its kind can give."""
    document = client.get("/api/v1/openapi.json").json
    wrong, missing = [], []
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        for status, response in responses.items():
            if status == "default" or int(status) >= 400:
                content = _resolve(document, response).get("content", {})
                if list(content) != ["application/problem+json"] or content[
                    "application/problem+json"
                ]["schema"] != {"$ref": "#/components/schemas/Problem"}:
                    wrong.append(f"{method.upper()} {path} {status}: {content}")
        expected = {"default"}
        if operation.get("security"):
            expected |= {"401", "403", "429"}
        if "{" in path:
            expected.add("404")
        if "requestBody" in operation:
            expected |= {"400", "413", "422"}
        if expected - set(responses):
            missing.append(f"{method.upper()} {path}: {sorted(expected - set(responses))}")
    assert wrong == []
    assert missing == []


def test_a_problem_answered_matches_the_documented_problem_schema(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").json
    schema = document["components"]["schemas"]["Problem"]
    answer = client.post("/api/v1/purchases", json={})
    assert answer.status_code == 401
    assert answer.content_type == "application/problem+json"
    assert jsonschema_rs.validator_for(schema).is_valid(answer.json)
    assert set(schema["required"]) <= set(answer.json)
