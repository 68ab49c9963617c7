"""The OpenAPI document's own pieces (SPEC 3.1): errors documented as the RFC 9457 problems the
server answers with, the refusals each operation can give, one-line summaries, the OAuth 2
security scheme with SPEC 3.2's scopes, and the browsable page at `/api/v1/docs`, served with
its assets by the app so that it works with no network."""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path
from typing import Any

import flask_swagger_ui
from apispec import APISpec, BasePlugin
from flask import Blueprint as FlaskBlueprint
from flask import Flask, Response, current_app, render_template, send_from_directory
from werkzeug.exceptions import NotFound

from coalition.oauth import openapi as oauth_openapi
from coalition.oauth import scopes
from coalition.web import access

PROBLEM_MEDIA_TYPE = "application/problem+json"
# SPEC 3.1: every error is an RFC 9457 problem with a stable `code`. Its schema in the document;
# a problem may carry more members than these (`errors`, `limit`, `required`...).
PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An RFC 9457 problem: what went wrong, and a stable machine `code`.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "format": "uri", "description": "names the `code`"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "for a person: what to change"},
        "code": {
            "type": "string",
            "description": "stable: `validation_error`, `not_found`, `insufficient_points`...",
        },
        "instance": {"type": "string", "description": "the path asked for"},
        "errors": {
            "type": "object",
            "description": "with `validation_error`: the messages per field",
        },
    },
    "additionalProperties": True,
}
# What the refusals common to many operations mean (docs/api.md lists every code).
REFUSALS = {
    400: "Malformed: the body is not JSON (`malformed_json`).",
    401: "No live access token (`invalid_token`): missing, unknown, expired or revoked, or a "
    "suspended merchant's.",
    403: "A token of another kind (`wrong_token_kind`), or one without a scope this operation "
    "needs (`insufficient_scope`).",
    404: "No such object (`not_found`); another tenant's objects do not exist for the caller.",
    409: "In conflict with what was recorded before (`idempotency_conflict`...).",
    413: "The body is larger than 10 MiB (`payload_too_large`).",
    415: "The body is of a media type this operation does not read (`unsupported_media_type`).",
    422: "Invalid fields (`validation_error`, with `errors` per field), or a rule of the "
    "domain refused (its own `code`).",
    429: "Too many requests (`rate_limited`); try again later.",
}


def register_problem_responses(spec: APISpec) -> None:
    """The `Problem` schema and, for every error status, a response whose body is a problem."""
    spec.components.schema("Problem", component=PROBLEM_SCHEMA)
    for status in HTTPStatus:
        if status >= 400:
            spec.components.response(
                status.name, problem(REFUSALS.get(status, status.phrase)), lazy=True
            )
    spec.components.response(
        "DEFAULT_ERROR", problem("Any other refusal or failure: a problem."), lazy=True
    )


def _first_sentence(text: str) -> str:
    """Up to the first full stop or colon outside brackets."""
    depth = 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and char in ".:" and text[index + 1 : index + 2] in ("", " "):
            return text[:index]
    return text


def summarise(operation: dict[str, Any]) -> None:
    """A view's docstring paragraph is its operation's summary; when it is longer than a
    sentence, the first sentence is the summary and the paragraph the description."""
    text = " ".join(operation.get("summary", "").split())
    operation["summary"] = _first_sentence(text)
    if operation["summary"] != text.rstrip("."):
        operation["description"] = "\n\n".join(filter(None, [text, operation.get("description")]))


def problem(description: str) -> dict[str, Any]:
    """A documented error response: `description`, and the problem as its body."""
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": "Problem"}}}


class ErrorResponses(BasePlugin):
    """Names in each operation the refusals it can give beyond those its view declares: a
    guarded one 401, 403 and 429 (a rate-limited public one 429), one with ids in its path 404,
    one with a body 400, 413 and 422. Every error response is a problem."""

    def __init__(self, app: Flask, prefix: str) -> None:
        self.app, self.prefix = app, prefix

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        rule = kwargs.get("rule")
        if rule is None or not operations or not rule.rule.startswith(self.prefix):
            return
        policy = access.policy_of(self.app, rule.endpoint)
        for method, operation in operations.items():
            if method.startswith("x-") or not isinstance(operation, dict):
                continue
            statuses = set()
            if policy is not None and not policy.public:
                statuses |= {401, 403, 429}
            elif policy is not None and policy.limit:
                statuses.add(429)
            if rule.arguments:
                statuses.add(404)
            if "requestBody" in operation:
                statuses |= {400, 413, 422}
            responses = operation.setdefault("responses", {})
            declared = {str(code) for code in responses}
            for status in sorted(statuses):
                if str(status) not in declared:
                    responses[status] = HTTPStatus(status).name
            for code, response in responses.items():
                if str(code).isdigit() and int(code) >= 400 and isinstance(response, dict):
                    response.setdefault("content", problem("")["content"])
            summarise(operation)
            # Successes, then refusals by status, then `default`.
            operation["responses"] = dict(
                sorted(
                    responses.items(), key=lambda item: (not str(item[0]).isdigit(), str(item[0]))
                )
            )


def oauth2_scheme() -> dict[str, Any]:
    """SPEC 3.2's scopes, by the flow that grants them: a merchant's or the operator's client
    gets its own with client credentials; a member delegates its own to a merchant's app with
    the authorization code (PKCE S256)."""

    def described(names: frozenset[str]) -> dict[str, str]:
        return {name: scopes.DESCRIPTIONS[name] for name in sorted(names)}

    return {
        "type": "oauth2",
        "description": "Tokens from /oauth/token (SPEC 3.2). Every client belongs to one "
        "tenant, a merchant or the operator, and its tokens act only inside it.",
        "flows": {
            "clientCredentials": {
                "tokenUrl": "/oauth/token",
                "scopes": described(scopes.MERCHANT_SCOPES | scopes.OPERATOR_SCOPES),
            },
            "authorizationCode": {
                "authorizationUrl": "/oauth/authorize",
                "tokenUrl": "/oauth/token",
                "refreshUrl": "/oauth/token",
                "scopes": described(scopes.MEMBER_SCOPES),
            },
        },
    }


# The docs page (SPEC 3.1: browsable at /api/v1/docs) and its assets, served by the app: Swagger
# UI from the pinned flask-swagger-ui package (its `dist`, not its blueprint), so the page works
# with no network, and no inline script (a strict CSP can come later).
_SWAGGER_UI = Path(flask_swagger_ui.__file__).parent / "dist"
_OWN_ASSETS = Path(__file__).parent / "static"
DOCS_ASSETS = {
    "swagger-ui.css": (_SWAGGER_UI, "text/css"),
    "swagger-ui-bundle.js": (_SWAGGER_UI, "text/javascript"),
    "swagger-ui-standalone-preset.js": (_SWAGGER_UI, "text/javascript"),
    "api-docs.js": (_OWN_ASSETS, "text/javascript"),
}


def docs_page(prefix: str) -> FlaskBlueprint:
    """`{prefix}/docs`, Swagger UI reading `{prefix}/openapi.json`, and its assets."""
    page = FlaskBlueprint("api-docs-ui", __name__, template_folder="templates")

    @page.get(f"{prefix}/docs")
    def docs() -> str:
        title = current_app.config["API_TITLE"]
        return render_template("api_docs.html", title=title, spec_url=f"{prefix}/openapi.json")

    @page.get(f"{prefix}/docs/assets/<name>")
    def asset(name: str) -> Response:
        if name not in DOCS_ASSETS:
            raise NotFound(name)
        folder, mimetype = DOCS_ASSETS[name]
        response = send_from_directory(folder, name, mimetype=mimetype, max_age=86400)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return page


def document_oauth(spec: APISpec, app: Flask) -> None:
    """SPEC 3.2's OAuth endpoints, plain Flask views, described beside them."""
    spec.components.security_scheme(
        "clientSecretBasic", oauth_openapi.SECURITY_SCHEMES["clientSecretBasic"]
    )
    rules = {rule.rule: rule for rule in app.url_map.iter_rules()}
    for path, operations in oauth_openapi.paths().items():
        spec.path(rule=rules[path], operations=operations)
