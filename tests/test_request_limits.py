"""The app's bounds on header fields, at their edges: fields are counted and measured as
`request.headers` lists them (a body's Content-Type and Content-Length among them)."""

from __future__ import annotations

import json

import pytest
from werkzeug.datastructures import EnvironHeaders
from werkzeug.test import EnvironBuilder, run_wsgi_app

from coalition.request_limits import MAX_FIELD_BYTES, MAX_FIELDS

BODY = {"amount": 1}


def _environ(extra: dict[str, str]) -> dict[str, object]:
    return EnvironBuilder(
        "/api/v1/purchases", method="POST", json=BODY, headers=extra
    ).get_environ()


def _headers_sent(extra: dict[str, str]) -> int:
    """How many fields `request.headers` lists for this POST."""
    return len(list(EnvironHeaders(_environ(extra))))


def _post(app, extra: dict[str, str]) -> tuple[int, dict[str, object]]:
    body, status, _headers = run_wsgi_app(app, _environ(extra))
    return int(status.split()[0]), json.loads(b"".join(body))


@pytest.mark.both_backends
def test_as_many_header_fields_as_allowed_pass_and_one_more_is_431(app):
    base = _headers_sent({})
    at_limit = {f"X-Note-{n}": "n" for n in range(MAX_FIELDS - base)}
    assert _headers_sent(at_limit) == MAX_FIELDS

    assert _post(app, at_limit)[0] == 401  # past the bound: no token
    status, problem = _post(app, {**at_limit, "X-One-More": "n"})
    assert status == 431
    assert problem["detail"] == f"the request has more than {MAX_FIELDS} header fields"


@pytest.mark.both_backends
def test_a_header_field_as_long_as_allowed_passes_and_one_byte_more_is_431(app):
    name = "X-Note"
    longest = "n" * (MAX_FIELD_BYTES - len(name) - 2)  # `Name: value`

    assert _post(app, {name: longest})[0] == 401
    status, problem = _post(app, {name: longest + "n"})
    assert status == 431
    assert problem["detail"] == f"a header field is longer than {MAX_FIELD_BYTES} bytes"
