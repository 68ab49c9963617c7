"""Bounds on a request's head: the URL and the header fields (issue 9, point 15). The app checks
them itself, so that an oversized URL or header gets a problem like any other refusal; gunicorn's
own limits (`config/gunicorn.py`) are set above these, because gunicorn answers what it refuses
with an HTML page before the app sees the request. What gunicorn still refuses itself is in
docs/api.md."""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import RequestHeaderFieldsTooLarge, RequestURITooLarge

from coalition.web import problems

# The request target (path and query, as sent). gunicorn takes request lines of up to 8190.
MAX_TARGET_BYTES = 4096
# One header field (`Name: value`), and how many. gunicorn takes 32 KiB and 200.
MAX_FIELD_BYTES = 8190
MAX_FIELDS = 100
# What werkzeug's EnvironHeaders lists: HTTP_* but these two, and the two CGI fields when set.
_NOT_FIELDS = frozenset({"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"})
_CONTENT_FIELDS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})


def _refusal(status: int, detail: str) -> Response:
    if not problems.wants_problem():
        raise (RequestURITooLarge if status == 414 else RequestHeaderFieldsTooLarge)(detail)
    return problems.response(problems.problem_body(status, detail))


def init_app(app: Flask) -> None:
    @app.before_request
    def _bounded() -> Response | None:
        environ = request.environ
        # WSGI strings hold the bytes as sent, one character each.
        target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.full_path
        if len(target) > MAX_TARGET_BYTES:
            return _refusal(414, f"the URL is longer than {MAX_TARGET_BYTES} bytes")
        # The header fields as `request.headers` lists them, read from the environ directly:
        # building each name (`HTTP_X_REQUEST_ID` -> `X-Request-Id`) to count it cost more
        # than the rest of the check.
        fields = longest = 0
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                if key in _NOT_FIELDS:
                    continue
                name = len(key) - 5
            elif key in _CONTENT_FIELDS and value:
                name = len(key)
            else:
                continue
            fields += 1
            longest = max(longest, name + 2 + len(value))
        if fields > MAX_FIELDS:
            return _refusal(431, f"the request has more than {MAX_FIELDS} header fields")
        if longest > MAX_FIELD_BYTES:
            return _refusal(431, f"a header field is longer than {MAX_FIELD_BYTES} bytes")
        return None
