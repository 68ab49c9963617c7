"""A shop applies, the operator reviews and approves it, gives it API credentials, and can
suspend it: from that moment its tokens stop working."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition.database import table
from merchants.models import Merchant
from tests import factories

APPLICATION = {
    "name": "Kaffee Klatsch",
    "email": "Owner@Kaffee.example",
    "country": "DE",
    "category": "cafe",
    "website": "https://kaffee.example",
    "contact_name": "Greta Bohne",
    "password": "correct horse battery",
}


def _apply(client: FlaskClient, **changes: Any) -> Any:
    return client.post("/api/v1/merchant-applications", json={**APPLICATION, **changes})


def test_an_application_waits_as_pending_with_its_password_hashed(
    client: FlaskClient, session: Session
) -> None:
    response = _apply(client)

    assert response.status_code == 201
    assert response.json["status"] == "pending"
    assert response.json["id"].startswith("mer_")
    row = session.execute(
        select(table(Merchant)).where(table(Merchant).c.public_id == response.json["id"])
    ).one()
    assert row.email == "owner@kaffee.example"
    assert row.password_hash and "correct horse" not in row.password_hash


def test_the_same_email_cannot_apply_twice(client: FlaskClient, session: Session) -> None:
    assert _apply(client).status_code == 201
    again = _apply(client, email="OWNER@kaffee.example", name="Another")
    assert again.status_code == 409
    assert again.json["code"] == "email_taken"


def test_an_application_with_bad_fields_names_each_and_writes_nothing(
    client: FlaskClient, session: Session
) -> None:
    before = session.execute(select(table(Merchant).c.id)).all()
    response = _apply(client, country="Germany", website="not a url", status="active")

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert set(response.json["errors"]) == {"country", "website", "status"}
    assert session.execute(select(table(Merchant).c.id)).all() == before


def test_the_operator_lists_pending_applications_and_approves_one(
    client: FlaskClient, session: Session
) -> None:
    ops = factories.operator_headers(session)
    applied = _apply(client).json["id"]
    factories.merchant(session, "Already in")

    pending = client.get("/api/v1/ops/merchants?status=pending", headers=ops)
    assert [m["id"] for m in pending.json["data"]] == [applied]

    approved = client.post(f"/api/v1/ops/merchants/{applied}/approve", headers=ops)
    assert approved.json == {"id": applied, "status": "active"}
    assert client.get("/api/v1/ops/merchants?status=pending", headers=ops).json["data"] == []


def test_the_operator_pages_through_merchants_with_a_cursor(
    client: FlaskClient, session: Session
) -> None:
    ops = factories.operator_headers(session)
    made = [factories.merchant(session, f"Shop {n}") for n in range(5)]

    first = client.get("/api/v1/ops/merchants?limit=2", headers=ops).json
    second = client.get(
        f"/api/v1/ops/merchants?limit=2&cursor={first['next_cursor']}", headers=ops
    ).json
    third = client.get(
        f"/api/v1/ops/merchants?limit=2&cursor={second['next_cursor']}", headers=ops
    ).json

    names = [m["name"] for page in (first, second, third) for m in page["data"]]
    assert names == [f"Shop {n}" for n in reversed(range(5))]
    assert third["next_cursor"] is None
    assert len(made) == 5


def test_a_page_larger_than_500_or_a_forged_cursor_is_refused(
    client: FlaskClient, session: Session
) -> None:
    ops = factories.operator_headers(session)
    too_big = client.get("/api/v1/ops/merchants?limit=501", headers=ops)
    forged = client.get("/api/v1/ops/merchants?cursor=abc", headers=ops)
    assert (too_big.status_code, too_big.json["code"]) == (422, "validation_error")
    assert (forged.status_code, forged.json["code"]) == (422, "validation_error")


def test_a_client_made_by_the_operator_works_until_the_merchant_is_suspended(
    client: FlaskClient, session: Session
) -> None:
    ops = factories.operator_headers(session)
    shop = factories.merchant(session, "Bakery")
    shop_id = session.execute(
        select(table(Merchant).c.public_id).where(table(Merchant).c.id == shop)
    ).scalar_one()

    made = client.post(
        f"/api/v1/ops/merchants/{shop_id}/clients",
        json={"name": "till 1", "scopes": ["transactions:read"]},
        headers=ops,
    )
    assert made.status_code == 201
    assert made.json["client_secret"].startswith("cs_")
    till = factories.bearer(session, made.json["client_id"], "transactions:read")
    assert client.get("/api/v1/transactions", headers=till).status_code == 200

    client.post(f"/api/v1/ops/merchants/{shop_id}/suspend", headers=ops)
    refused = client.get("/api/v1/transactions", headers=till)
    assert (refused.status_code, refused.json["code"]) == (401, "invalid_token")

    client.post(f"/api/v1/ops/merchants/{shop_id}/approve", headers=ops)
    assert client.get("/api/v1/transactions", headers=till).status_code == 200


def test_a_client_of_a_pending_merchant_does_not_work_before_approval(
    client: FlaskClient, session: Session
) -> None:
    ops = factories.operator_headers(session)
    applied = _apply(client).json["id"]
    made = client.post(
        f"/api/v1/ops/merchants/{applied}/clients",
        json={"name": "till", "scopes": ["transactions:read"]},
        headers=ops,
    ).json
    till = factories.bearer(session, made["client_id"], "transactions:read")
    assert client.get("/api/v1/transactions", headers=till).status_code == 401
    client.post(f"/api/v1/ops/merchants/{applied}/approve", headers=ops)
    assert client.get("/api/v1/transactions", headers=till).status_code == 200


def test_a_merchant_client_cannot_be_given_the_operator_scope(
    client: FlaskClient, session: Session
) -> None:
    ops = factories.operator_headers(session)
    shop_id = client.post("/api/v1/merchant-applications", json=APPLICATION).json["id"]
    refused = client.post(
        f"/api/v1/ops/merchants/{shop_id}/clients",
        json={"name": "sneaky", "scopes": ["operator"]},
        headers=ops,
    )
    assert (refused.status_code, refused.json["code"]) == (422, "validation_error")
    assert "scopes" in refused.json["errors"]


def test_merchant_routes_of_the_operator_refuse_a_merchant_token(
    client: FlaskClient, session: Session
) -> None:
    shop = factories.merchant(session)
    till = factories.merchant_headers(session, shop)
    refused = client.get("/api/v1/ops/merchants", headers=till)
    assert (refused.status_code, refused.json["code"]) == (403, "wrong_token_kind")
