"""The OpenAPI document (SPEC 3.1) describes every API route, with the OAuth scopes it needs."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import jsonschema_rs
from flask import Flask
from flask.testing import FlaskClient

from coalition.oauth import scopes
from coalition.web.access import policy_of


def test_every_api_route_is_in_the_openapi_document_with_its_scopes(
    app: Flask, client: FlaskClient
) -> None:
    document = client.get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.")
    missing, unsecured = [], []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.endpoint.startswith(
            ("api-docs.", "api-docs-ui.")
        ):
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


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            if attributes.get("src"):
                self.urls.append(attributes["src"] or "")
            else:
                self.inline_scripts += 1
        elif tag == "link" and attributes.get("href"):
            self.urls.append(attributes["href"] or "")


def test_the_docs_page_works_offline_from_assets_the_app_serves(client: FlaskClient) -> None:
    """SPEC 3.1: browsable at /api/v1/docs, with no network: every script and style comes
    from the app itself, with its content type, and no script is inline (a strict CSP can
    allow 'self' alone)."""
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assets = _Assets()
    assets.feed(page.get_data(as_text=True))
    assert assets.inline_scripts == 0
    kinds = {}
    for url in assets.urls:
        assert urlsplit(url).netloc == "" and url.startswith("/"), url
        with client.get(url) as answer:
            assert answer.status_code == 200, url
            assert answer.data.strip(), url
            kinds[url.rsplit("/", 1)[-1]] = answer.mimetype
    assert kinds == {
        "swagger-ui.css": "text/css",
        "swagger-ui-bundle.js": "text/javascript",
        "swagger-ui-standalone-preset.js": "text/javascript",
        "api-docs.js": "text/javascript",
    }
    assert b"/api/v1/openapi.json" in page.data


def test_only_the_docs_assets_are_served_from_there(client: FlaskClient) -> None:
    for name in ("index.html", "../openapi.json", "oauth2-redirect.html"):
        answer = client.get(f"/api/v1/docs/assets/{name}")
        assert answer.status_code == 404, name
        assert answer.content_type == "application/problem+json"


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
        if not path.startswith("/api/v1/"):
            continue  # the OAuth endpoints answer RFC 6749 errors, as OAuth clients expect
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


def test_the_security_scheme_lists_every_scope_and_every_operation_names_known_ones(
    client: FlaskClient,
) -> None:
    """SPEC 3.2: every scope, described, under the flow that grants it; no operation needs a
    scope the scheme does not list."""
    document = client.get("/api/v1/openapi.json").json
    flows = document["components"]["securitySchemes"]["oauth2"]["flows"]
    listed = {scope: words for flow in flows.values() for scope, words in flow["scopes"].items()}
    assert set(flows["clientCredentials"]["scopes"]) == set(
        scopes.MERCHANT_SCOPES | scopes.OPERATOR_SCOPES
    )
    assert set(flows["authorizationCode"]["scopes"]) == set(scopes.MEMBER_SCOPES)
    assert all(words.strip() for words in listed.values())
    schemes = document["components"]["securitySchemes"]
    unknown = [
        f"{method.upper()} {path}: {requirement}"
        for method, path, operation in _operations(document)
        for requirement in operation.get("security", [])
        for scheme, needed in requirement.items()
        if scheme not in schemes or (scheme == "oauth2" and not set(needed) <= set(listed))
    ]
    assert unknown == []


def test_every_operation_has_a_one_line_summary(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").json
    without = [
        f"{method.upper()} {path}"
        for method, path, operation in _operations(document)
        if not operation.get("summary", "").strip() or "\n" in operation["summary"]
    ]
    assert without == []


def test_the_oauth_endpoints_are_described_with_their_form_parameters(
    client: FlaskClient,
) -> None:
    """SPEC 3.2's endpoints are in the document: token, revoke and introspect take a form and
    answer JSON, authorize is the member's pages, the metadata is JSON."""
    paths = client.get("/api/v1/openapi.json").json["paths"]
    form = "application/x-www-form-urlencoded"
    for path, field in (
        ("/oauth/token", "grant_type"),
        ("/oauth/revoke", "token"),
        ("/oauth/introspect", "token"),
    ):
        operation = paths[path]["post"]
        assert field in operation["requestBody"]["content"][form]["schema"]["required"]
        assert "application/json" in operation["responses"]["200"]["content"]
        assert {"400", "401"} <= set(operation["responses"])
    authorize = paths["/oauth/authorize"]
    assert {p["name"] for p in authorize["get"]["parameters"]} >= {
        "response_type",
        "client_id",
        "redirect_uri",
        "code_challenge",
        "code_challenge_method",
    }
    assert "text/html" in authorize["get"]["responses"]["200"]["content"]
    assert form in authorize["post"]["requestBody"]["content"]
    metadata = paths["/.well-known/oauth-authorization-server"]["get"]
    assert "application/json" in metadata["responses"]["200"]["content"]
