"""Every error under /api is an RFC 9457 problem with a stable code (SPEC 3.1): never an HTML
page, never a stack trace, whatever went wrong."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from coalition.members import reads
from tests import factories


def _is_problem(response, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert (body["status"], body["code"]) == (status, code)
    assert body["type"].startswith("https://") and body["title"] and body["detail"]
    assert body["instance"] == response.request.path


def test_an_unknown_api_path_is_a_not_found_problem(client: FlaskClient) -> None:
    _is_problem(client.get("/api/v1/no-such-thing"), 404, "not_found")


def test_a_wrong_method_is_a_problem_that_names_the_allowed_ones(client: FlaskClient) -> None:
    response = client.delete("/api/v1/purchases")
    _is_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_a_missing_token_is_a_problem(client: FlaskClient) -> None:
    _is_problem(client.post("/api/v1/purchases", json={}), 401, "invalid_token")


def test_a_crash_is_a_problem_without_a_trace(
    client: FlaskClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(reads, "card_view", broken)
    shop = factories.merchant(session)
    response = client.get(
        "/api/v1/members/mbr_anyone", headers=factories.merchant_headers(session, shop)
    )

    _is_problem(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "hunter2" not in text


def test_pages_outside_the_api_keep_html_errors(client: FlaskClient) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
