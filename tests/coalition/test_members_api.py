"""A shopper joins online or at a till and gets a card; any partner's till looks the card up and
sees its points, but nothing of the member's other shops and no contact details."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from coalition import clock
from coalition.database import table
from coalition.errors import CoalitionError
from coalition.ledger import holds
from coalition.ledger.models import Account
from coalition.members import cards, services
from coalition.members.models import Member
from tests import factories as f
from tests.races import race

members = table(Member)
accounts = table(Account)
PREFIX = "6375"  # the test settings' COALITION_CARD_PREFIX (the default)
SIGNUP = {"email": "Ada@Example.org", "password": "correct horse battery", "name": "Ada"}


def _sign_up(client: FlaskClient, **changes: Any) -> Any:
    return client.post("/api/v1/member-signups", json={**SIGNUP, **changes})


def _member_row(session: Session, public_id: str) -> Any:
    return session.execute(select(members).where(members.c.public_id == public_id)).one()


def _count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(members)).scalar_one()


def _card_of(session: Session, member_id: int) -> tuple[str, str]:
    row = session.execute(
        select(members.c.card_number, members.c.public_id).where(members.c.id == member_id)
    ).one()
    return row.card_number, row.public_id


def _issued_elsewhere(prefix: str = PREFIX) -> str:
    """A valid card number of the coalition that nobody holds (yet)."""
    return cards.new_card_number(prefix)


# Online sign-up


@pytest.mark.both_backends
def test_a_shopper_signs_up_and_gets_a_valid_card(client: FlaskClient, session: Session) -> None:
    response = _sign_up(client)

    assert response.status_code == 201
    body = response.json
    assert set(body) == {"id", "card_number", "email", "name", "tier", "created_at"}
    assert body["id"].startswith("mbr_")
    assert body["email"] == "ada@example.org"
    assert (body["name"], body["tier"]) == ("Ada", "Member")
    assert cards.is_valid(body["card_number"], PREFIX)
    row = _member_row(session, body["id"])
    assert row.password_hash.startswith("scrypt:")
    assert "correct horse" not in row.password_hash
    assert row.enrolled_by_merchant_id is None
    account = session.execute(select(accounts).where(accounts.c.member_id == row.id)).one()
    assert (account.balance, account.debt) == (0, 0)


@pytest.mark.both_backends
def test_the_same_email_cannot_sign_up_twice_in_any_letter_case(
    client: FlaskClient, session: Session
) -> None:
    assert _sign_up(client).status_code == 201
    before = _count(session)

    again = _sign_up(client)
    shouting = _sign_up(client, email="ADA@EXAMPLE.ORG", name="Another Ada")

    for response in (again, shouting):
        assert response.status_code == 409
        assert response.mimetype == "application/problem+json"
        assert response.json["code"] == "email_taken"
    assert _count(session) == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"email": "not an email"}, "email"),
        ({"email": None}, "email"),
        ({"email": "e" * 310 + "@example.org"}, "email"),
        ({"email": "\u0130" * 300 + "@example.org"}, "email"),  # twice as long lower-cased
        ({"password": "short"}, "password"),
        ({"password": "x" * 201}, "password"),
        ({"password": 12345678901}, "password"),
        ({"password": "bad\ud800surrogate"}, "password"),
        ({"name": "Nul\x00byte"}, "name"),
        ({"name": ""}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"tier": "Platinum"}, "tier"),
        ({"balance": 1000000}, "balance"),
        ({"status": "active"}, "status"),
    ],
)
def test_a_bad_sign_up_names_the_field_and_writes_nothing(
    client: FlaskClient, session: Session, changes: dict[str, Any], field: str
) -> None:
    before = _count(session)

    response = _sign_up(client, **changes)

    assert response.status_code == 422
    assert response.json["code"] == "validation_error"
    assert field in response.json["errors"]
    assert _count(session) == before


def test_a_sign_up_without_a_password_or_with_broken_json_is_refused(
    client: FlaskClient, session: Session
) -> None:
    missing = client.post("/api/v1/member-signups", json={"email": "bob@example.org"})
    broken = client.post(
        "/api/v1/member-signups", data='{"email": ', content_type="application/json"
    )

    assert (missing.status_code, set(missing.json["errors"])) == (422, {"password"})
    assert (broken.status_code, broken.json["code"]) == (400, "malformed_json")


def test_sign_ups_from_one_address_are_rate_limited(make_app: Callable[..., Flask]) -> None:
    # Bodies that fail validation: the limit is counted before the body is read, and nothing
    # is written, so this app's (committed-only) database needs no cleaning.
    limited = make_app(RATE_LIMIT_SIGNUP="2/hour").test_client()

    answers = [limited.post("/api/v1/member-signups", json={}) for _ in range(3)]

    assert [a.status_code for a in answers] == [422, 422, 429]
    assert answers[2].mimetype == "application/problem+json"
    assert answers[2].json["code"] == "rate_limited"


def test_racing_sign_ups_with_one_email_make_one_member(committed: Flask) -> None:
    card = _issued_elsewhere()

    same_email = race(
        committed,
        8,
        lambda s: services.register_member(
            s, now=f.T0, card_prefix=PREFIX, email="Race@Example.org"
        ),
    )
    same_card = race(
        committed,
        8,
        lambda s: services.register_member(s, now=f.T0, card_prefix=PREFIX, card_number=card),
    )

    for outcomes, refusal in ((same_email, "email_taken"), (same_card, "card_taken")):
        made = [o for o in outcomes if isinstance(o, services.NewMember)]
        refused = [o.code for o in outcomes if isinstance(o, CoalitionError)]
        assert (len(made), refused) == (1, [refusal] * 7)


# Enrolment at a till


def test_a_till_enrols_a_member_with_a_new_card(client: FlaskClient, session: Session) -> None:
    shop = f.merchant(session, "Bakery")

    response = client.post(
        "/api/v1/members",
        json={"email": "Cleo@Example.org", "phone": "+49 30 1234567", "name": "Cleo"},
        headers=f.merchant_headers(session, shop, "members:write"),
    )

    assert response.status_code == 201
    body = response.json
    assert cards.is_valid(body["card_number"], PREFIX)
    assert (body["email"], body["phone"], body["name"]) == (
        "cleo@example.org",
        "+49 30 1234567",
        "Cleo",
    )
    row = _member_row(session, body["id"])
    assert row.enrolled_by_merchant_id == shop
    assert row.password_hash is None


def test_a_till_enrols_a_member_with_nothing_but_a_new_card(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session)
    response = client.post(
        "/api/v1/members", json={}, headers=f.merchant_headers(session, shop, "members:write")
    )
    assert response.status_code == 201
    assert response.json["email"] is None
    assert cards.is_valid(response.json["card_number"], PREFIX)


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        ({"name": "Eve", "email": "eve@example.org"}, None, 415, "unsupported_media_type"),
        (b'{"name": "Eve"}', "text/plain", 415, "unsupported_media_type"),
        (b"", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"", None, 400, "malformed_json"),
        (b"", "application/json", 400, "malformed_json"),
    ],
    ids=["a form", "JSON sent as text", "an empty form", "no body", "an empty JSON body"],
)
def test_an_enrolment_that_is_not_json_makes_no_member(
    client: FlaskClient,
    session: Session,
    data: Any,
    content_type: str | None,
    status: int,
    code: str,
) -> None:
    shop = f.merchant(session)
    before = _count(session)

    response = client.post(
        "/api/v1/members",
        data=data,
        content_type=content_type,
        headers=f.merchant_headers(session, shop, "members:write"),
    )

    assert (response.status_code, response.json["code"]) == (status, code)
    assert response.mimetype == "application/problem+json"
    assert _count(session) == before


@pytest.mark.both_backends
def test_a_pre_printed_card_is_issued_once(client: FlaskClient, session: Session) -> None:
    shop = f.merchant(session)
    headers = f.merchant_headers(session, shop, "members:write")
    card = _issued_elsewhere()

    first = client.post("/api/v1/members", json={"card_number": card}, headers=headers)
    second = client.post(
        "/api/v1/members", json={"card_number": card, "name": "Someone else"}, headers=headers
    )

    assert (first.status_code, first.json["card_number"]) == (201, card)
    assert (second.status_code, second.json["code"]) == (409, "card_taken")


@pytest.mark.parametrize(
    "card_number",
    [
        "typo",  # not digits
        "63751234567890",  # too short
        None,  # replaced below by a card with its last digit wrong
        cards.new_card_number("4000"),  # a valid Luhn number of another coalition
        "٦٣٧٥" + "0" * 12,  # non-ASCII digits
    ],
)
def test_a_card_that_is_not_ours_is_refused(
    client: FlaskClient, session: Session, card_number: str | None
) -> None:
    if card_number is None:
        good = _issued_elsewhere()
        card_number = good[:-1] + str((int(good[-1]) + 1) % 10)
    shop = f.merchant(session)
    before = _count(session)

    response = client.post(
        "/api/v1/members",
        json={"card_number": card_number},
        headers=f.merchant_headers(session, shop, "members:write"),
    )

    assert response.status_code == 422
    assert response.json["code"] == "validation_error"
    assert list(response.json["errors"]) == ["card_number"]
    assert _count(session) == before


def test_an_email_already_registered_cannot_be_enrolled_again(
    client: FlaskClient, session: Session
) -> None:
    assert _sign_up(client).status_code == 201
    shop = f.merchant(session)
    response = client.post(
        "/api/v1/members",
        json={"email": "ada@example.ORG"},
        headers=f.merchant_headers(session, shop, "members:write"),
    )
    assert (response.status_code, response.json["code"]) == (409, "email_taken")


@pytest.mark.both_backends
def test_a_random_card_that_is_already_issued_is_drawn_again(
    client: FlaskClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = f.merchant(session)
    taken, _ = _card_of(session, f.member(session))
    fresh = _issued_elsewhere()
    draws = iter([taken, fresh])
    monkeypatch.setattr(cards, "new_card_number", lambda prefix: next(draws))

    response = client.post(
        "/api/v1/members", json={}, headers=f.merchant_headers(session, shop, "members:write")
    )

    assert (response.status_code, response.json["card_number"]) == (201, fresh)


@pytest.mark.parametrize(
    "body",
    [
        {"tier": "Gold"},
        {"status": "blocked"},
        {"merchant_id": 1},
        {"balance": 5},
        {"phone": "call me"},
        {"phone": "123\n"},
        {"email": "x@example.org", "extra": True},
    ],
)
def test_an_enrolment_with_fields_a_till_must_not_set_is_refused(
    client: FlaskClient, session: Session, body: dict[str, Any]
) -> None:
    shop = f.merchant(session)
    before = _count(session)
    response = client.post(
        "/api/v1/members", json=body, headers=f.merchant_headers(session, shop, "members:write")
    )
    assert response.status_code == 422
    assert response.json["code"] == "validation_error"
    assert _count(session) == before


def test_enrolment_needs_a_merchant_token_with_members_write(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session)
    member_id = f.member(session)

    reader = client.post(
        "/api/v1/members", json={}, headers=f.merchant_headers(session, shop, "members:read")
    )
    as_member = client.post(
        "/api/v1/members", json={}, headers=f.member_headers(session, shop, member_id)
    )
    nobody = client.post("/api/v1/members", json={})

    assert (reader.status_code, reader.json["code"]) == (403, "insufficient_scope")
    assert (as_member.status_code, as_member.json["code"]) == (403, "wrong_token_kind")
    assert (nobody.status_code, nobody.json["code"]) == (401, "invalid_token")


# Look-up by card or id


def _as_typed(card: str, separator: str = " ") -> str:
    """A card number as a person types it from the card: in groups of four."""
    return separator.join(card[i : i + 4] for i in range(0, len(card), 4))


@pytest.mark.parametrize("separator", [" ", "-"])
def test_a_card_typed_in_groups_is_found(
    client: FlaskClient, session: Session, separator: str
) -> None:
    shop = f.merchant(session)
    member_id = f.member(session)
    f.purchase(session, member_id, shop, 120)
    card, public_id = _card_of(session, member_id)
    headers = f.merchant_headers(session, shop)
    typed = _as_typed(card, separator)

    looked_up = client.get(f"/api/v1/members/{typed}", headers=headers)
    bought = client.post(
        "/api/v1/purchases",
        json={"member": typed, "amount": 500, "currency": "EUR", "external_id": "typed"},
        headers=headers,
    )
    listed = client.get("/api/v1/transactions", query_string={"member": typed}, headers=headers)
    batch = client.post(
        "/api/v1/purchases/batch",
        json=[
            {"member": typed, "amount": 300, "currency": "EUR", "external_id": "b1"},
            {"member": card, "amount": 200, "currency": "EUR", "external_id": "b2"},
        ],
        headers=headers,
    )

    assert (looked_up.status_code, looked_up.json["id"]) == (200, public_id)
    assert (bought.status_code, bought.json["member"]["id"]) == (201, public_id)
    assert listed.status_code == 200 and len(listed.json["data"]) == 2
    assert [line["status"] for line in batch.json["results"]] == [201, 201]
    assert {line["body"]["member"]["id"] for line in batch.json["results"]} == {public_id}


def test_a_pre_printed_card_typed_in_groups_is_enrolled_as_its_digits(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session)
    headers = f.merchant_headers(session, shop, "members:write")
    card = _issued_elsewhere()

    first = client.post("/api/v1/members", json={"card_number": _as_typed(card)}, headers=headers)
    again = client.post("/api/v1/members", json={"card_number": card}, headers=headers)

    assert (first.status_code, first.json["card_number"]) == (201, card)
    assert (again.status_code, again.json["code"]) == (409, "card_taken")


@pytest.mark.parametrize(
    "typed",
    [
        "6375  1234",  # too short once its spaces go
        "6375\t" * 4,  # a tab is not how a card is written
        "6375.1234.5678.9012",
    ],
)
def test_only_spaces_and_dashes_are_taken_out_of_a_card(
    client: FlaskClient, session: Session, typed: str
) -> None:
    shop = f.merchant(session)
    response = client.get(f"/api/v1/members/{typed}", headers=f.merchant_headers(session, shop))
    assert (response.status_code, response.json["code"]) == (404, "not_found")


@pytest.mark.both_backends
def test_any_partner_looks_a_member_up_by_card_or_id(client: FlaskClient, session: Session) -> None:
    home, other = f.merchant(session, "Home shop"), f.merchant(session, "Other shop")
    member_id = f.member(session)
    f.purchase(session, member_id, home, 120)
    holds.place_hold(session, member_id=member_id, merchant_id=home, points=20, now=clock.utcnow())
    card, public_id = _card_of(session, member_id)
    headers = f.merchant_headers(session, other, "members:read")

    by_card = client.get(f"/api/v1/members/{card}", headers=headers)
    by_id = client.get(f"/api/v1/members/{public_id}", headers=headers)

    assert by_card.status_code == by_id.status_code == 200
    assert by_card.json == by_id.json
    assert by_card.json == {
        "id": public_id,
        "card": f"{card[:4]} •••• •••• {card[-4:]}",
        "tier": "Member",
        "balance": 120,
        "available": 100,
    }


@pytest.mark.parametrize(
    "address",
    [
        "mbr_nobodyhasthisid000000000",
        None,  # a valid card number nobody holds
        "6375000000000000",  # a typo: the Luhn digit is wrong
        "not-a-card",
    ],
)
def test_an_unknown_card_or_id_is_not_found(
    client: FlaskClient, session: Session, address: str | None
) -> None:
    shop = f.merchant(session)
    response = client.get(
        f"/api/v1/members/{address or _issued_elsewhere()}",
        headers=f.merchant_headers(session, shop, "members:read"),
    )
    assert (response.status_code, response.json["code"]) == (404, "not_found")


def test_a_blocked_card_is_not_found(client: FlaskClient, session: Session) -> None:
    shop = f.merchant(session)
    member_id = f.member(session)
    card, _ = _card_of(session, member_id)
    session.execute(update(members).where(members.c.id == member_id).values(status="blocked"))

    response = client.get(
        f"/api/v1/members/{card}", headers=f.merchant_headers(session, shop, "members:read")
    )
    assert response.status_code == 404


def test_look_up_is_for_merchant_tokens_with_members_read(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session)
    member_id = f.member(session)
    card, _ = _card_of(session, member_id)

    as_member = client.get(
        f"/api/v1/members/{card}", headers=f.member_headers(session, shop, member_id)
    )
    writer_only = client.get(
        f"/api/v1/members/{card}", headers=f.merchant_headers(session, shop, "members:write")
    )
    expired = client.get(
        f"/api/v1/members/{card}",
        headers=f.bearer(
            session,
            f.client(session, shop, "members:read")["client_id"],
            "members:read",
            now=clock.utcnow() - timedelta(hours=2),
        ),
    )

    assert (as_member.status_code, as_member.json["code"]) == (403, "wrong_token_kind")
    assert (writer_only.status_code, writer_only.json["code"]) == (403, "insufficient_scope")
    assert (expired.status_code, expired.json["code"]) == (401, "invalid_token")


def test_the_routes_are_in_the_openapi_document(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").json["paths"]
    for path in (
        "/api/v1/member-signups",
        "/api/v1/members",
        "/api/v1/members/{card_or_id}",
        "/api/v1/me",
        "/api/v1/me/balance",
        "/api/v1/me/transactions",
        "/api/v1/me/code",
    ):
        assert path in paths
