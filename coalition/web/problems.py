"""RFC 9457 problem responses. Every error under `/api` (and the OAuth endpoints) is
`application/problem+json` with a stable machine `code`: never an HTML page, never a trace."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from coalition.errors import BusinessDayClosed, CoalitionError

log = logging.getLogger(__name__)

CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Request body too large"),
    414: ("uri_too_long", "URI too long"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_error", "Invalid request"),
    429: ("rate_limited", "Too many requests"),
    431: ("header_fields_too_large", "Request header fields too large"),
    500: ("internal_error", "Internal error"),
    503: ("unavailable", "Service unavailable"),
}
PROBLEM_PATHS = ("/api/", "/oauth/token", "/oauth/revoke", "/oauth/introspect", "/webhooks/")


def problem_body(status: int, detail: str, code: str | None = None, **extra: Any) -> dict[str, Any]:
    default_code, title = CODES.get(status, ("error", "Error"))
    code = code or default_code
    return {
        "type": f"https://coalition.dev/problems/{code.replace('_', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


def response(body: dict[str, Any], status: int | None = None, headers: Any = None) -> Response:
    status = status or int(body["status"])
    body = {**body, "instance": request.path} if "instance" not in body else body
    return Response(
        json.dumps(body),
        status=status,
        headers=headers,
        mimetype="application/problem+json",
    )


def wants_problem() -> bool:
    return request.path.startswith(PROBLEM_PATHS) or request.path.rstrip("/") == "/api"


def _errors_of(error: HTTPException) -> dict[str, Any] | None:
    """webargs puts validation messages per location (`json`, `query`...); flatten them."""
    messages = (getattr(error, "data", None) or {}).get("messages")
    if not isinstance(messages, dict):
        return None
    merged: dict[str, Any] = {}
    for location_errors in messages.values():
        if isinstance(location_errors, dict):
            merged.update(location_errors)
        else:
            merged.setdefault("_schema", []).extend(location_errors)
    return merged


def from_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    errors = _errors_of(error)
    detail = error.description or ""
    if status == 422:
        detail = "the request has invalid fields; see errors"
    elif status == 413:
        detail = "the request body is larger than 10 MiB"
    extra = {"errors": errors} if errors else {}
    headers = dict(getattr(error, "data", {}).get("headers", {}) or {})
    valid_methods = getattr(error, "valid_methods", None)
    if status == 405 and valid_methods:
        headers["Allow"] = ", ".join(valid_methods)
    return response(problem_body(status, detail, None, **extra), headers=headers or None)


def init_app(app: Flask) -> None:
    @app.errorhandler(CoalitionError)
    def _domain_error(error: CoalitionError) -> Response:
        return response(error.problem())

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response | HTTPException:
        if isinstance(error, HTTPException):
            if wants_problem():
                return from_http_exception(error)
            return error
        if isinstance(error, DBAPIError) and "business_day_closed" in str(error.orig):
            # The settlement gate: the request's clock read a day settled meanwhile. Retrying
            # reads the clock again.
            closed = BusinessDayClosed("the business day of this request was settled; retry it")
            answer = response(closed.problem())
            answer.headers["Retry-After"] = "1"
            return answer
        log.exception("unhandled error", exc_info=error)
        if wants_problem():
            return response(problem_body(500, "something went wrong on our side"))
        raise error
