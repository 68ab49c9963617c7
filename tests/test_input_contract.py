"""The OpenAPI document and the server agree on what a request may hold (issue 9, point 16): a
body the document's schema allows is not refused as malformed, and one it forbids is refused.
Each row is one body, judged by the document (JSON Schema, formats asserted, as a client's
validator or Schemathesis judges it) and by the server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jsonschema_rs
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import clock
from coalition.members.models import Member
from merchants.models import Merchant
from tests import factories

TOMORROW = (clock.utcnow().date() + timedelta(days=2)).isoformat()


@dataclass(frozen=True)
class Row:
    name: str
    path: str
    body: Any
    allowed: bool  # what both must say
    caller: str = "merchant"
    method: str = "POST"


def purchase(**changes: Any) -> dict[str, Any]:
    return {"member": "CARD", "amount": 1250, "currency": "EUR", "external_id": "r-1", **changes}


def application(**changes: Any) -> dict[str, Any]:
    body = {
        "name": "Bakery",
        "email": "owner@bakery.example",
        "country": "DE",
        "category": "food",
        "website": "https://bakery.example",
        "contact_name": "Ada",
        "password": "long enough password",
    }
    return {**body, **changes}


ROWS = [
    Row("a whole number written 1250.0", "/api/v1/purchases", purchase(amount=1250.0), True),
    Row("a fraction", "/api/v1/purchases", purchase(amount=12.5), False),
    Row("an empty member", "/api/v1/purchases", purchase(member=""), False),
    Row("a blank member", "/api/v1/purchases", purchase(member="   "), False),
    Row("an empty external_id", "/api/v1/purchases", purchase(external_id=""), False),
    Row("a control character", "/api/v1/purchases", purchase(store="till\x07"), False),
    Row("an empty code", "/api/v1/holds", {"member": "CARD", "code": "", "points": 5}, False),
    Row("an empty batch", "/api/v1/purchases/batch", [], False),
    Row("a batch with a line that is no purchase", "/api/v1/purchases/batch", [{"x": 1}], True),
    Row(
        "no setting in a merchant's terms: back to the coalition's",
        "/api/v1/ops/economics",
        {"effective_from": TOMORROW, "merchant": "MERCHANT", "terms": {}},
        True,
        caller="operator",
        method="PUT",
    ),
    Row("no website", "/api/v1/merchant-applications", application(website=""), True, "nobody"),
    Row(
        "a website without a host",
        "/api/v1/merchant-applications",
        application(website="https://"),
        False,
        "nobody",
    ),
    Row(
        "an unusual but ordinary email",
        "/api/v1/merchant-applications",
        application(email="o'brien+bread@bäckerei.example.de"),
        True,
        "nobody",
    ),
    Row(
        "an email to an IP address",
        "/api/v1/member-signups",
        {"email": "ada@[192.0.2.1]", "password": "long enough password"},
        False,
        "nobody",
    ),
    Row(
        "an email with a quoted name",
        "/api/v1/member-signups",
        {"email": '"ada lovelace"@example.org', "password": "long enough password"},
        False,
        "nobody",
    ),
    Row(
        "a redirect URI that is no URL",
        "/api/v1/ops/merchants/MERCHANT/clients",
        {"name": "app", "scopes": ["balance:read"], "redirect_uris": [""]},
        False,
        "operator",
    ),
    Row(
        "a scope nobody may hold",
        "/api/v1/ops/merchants/MERCHANT/clients",
        {"name": "app", "scopes": ["everything"]},
        False,
        "operator",
    ),
]


def _request_schema(document: dict, path: str, method: str) -> dict:
    def fits(template: str) -> bool:
        parts, asked = template.split("/"), path.split("/")
        return len(parts) == len(asked) and all(
            part == other or part.startswith("{") for part, other in zip(parts, asked, strict=True)
        )

    template = next(template for template in document["paths"] if fits(template))
    body = document["paths"][template][method.lower()]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, dict):
        return {key: _fill(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, names) for item in value]
    return value


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_the_document_and_the_server_agree_on_a_body(
    client: FlaskClient, session: Session, row: Row
) -> None:
    merchant_id = factories.merchant(session)
    member_id = factories.member(session)
    names = {
        "CARD": session.execute(
            select(Member.card_number).where(Member.id == member_id)
        ).scalar_one(),
        "MERCHANT": session.execute(
            select(Merchant.public_id).where(Merchant.id == merchant_id)
        ).scalar_one(),
    }
    headers = {
        "merchant": lambda: factories.merchant_headers(session, merchant_id),
        "operator": lambda: factories.operator_headers(session),
        "nobody": dict,
    }[row.caller]()
    body, path = _fill(row.body, names), _fill(row.path, names)
    document = client.get("/api/v1/openapi.json").json

    by_document = jsonschema_rs.validator_for(
        _request_schema(document, path, row.method), validate_formats=True
    ).is_valid(body)
    answer = client.open(path, method=row.method, json=body, headers=headers)
    refused_as_malformed = answer.status_code in (400, 422) and answer.json["code"] in (
        "validation_error",
        "malformed_json",
    )

    assert by_document == row.allowed
    assert refused_as_malformed != row.allowed, answer.json
