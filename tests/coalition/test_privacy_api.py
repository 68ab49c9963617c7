"""Consent and privacy through the API (SPEC 2, 3.3, 3.4): a member grants and withdraws its
marketing consents through a partner's app, with a history of who changed what under which
text; a merchant lists only the consenting members who shopped there, with the contact for the
channel asked; a member exports all its data and erases itself."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition.database import table
from coalition.members.models import Member
from coalition.members.services import create_member
from coalition.oauth.models import OAuthToken
from coalition.privacy import services as privacy
from coalition.privacy.texts import TEXTS
from tests import factories as f
from tests.factories import T0

pytestmark = pytest.mark.both_backends
members = table(Member)
oauth_tokens = table(OAuthToken)
CONSENTING = "balance:read consents:write"


def _member(
    session: Session,
    email: str | None = "mia@example.org",
    phone: str | None = "+49 30 1234567",
    name: str | None = "Mia Muster",
) -> int:
    return create_member(session, now=T0, email=email, phone=phone, name=name)[0]


def _public_id(session: Session, member_id: int) -> str:
    return session.execute(
        select(members.c.public_id).where(members.c.id == member_id)
    ).scalar_one()


def _grant(session: Session, member_id: int, **wanted: bool) -> None:
    privacy.set_consents(session, member_id, wanted, source=privacy.ME, now=T0)


def _audience(client: FlaskClient, headers: dict[str, str], channel: str, **args: Any) -> Any:
    response = client.get(
        "/api/v1/audience", query_string={"channel": channel, **args}, headers=headers
    )
    assert response.status_code == 200, response.json
    return response.json


# Consents -----------------------------------------------------------------------------------


def test_nothing_is_granted_until_the_member_says_so(client: FlaskClient, session: Session) -> None:
    shop = f.merchant(session)
    member = _member(session)

    response = client.get("/api/v1/me/consents", headers=f.member_headers(session, shop, member))

    assert response.status_code == 200
    assert [(c["purpose"], c["granted"]) for c in response.json["consents"]] == [
        ("email", False),
        ("sms", False),
        ("post", False),
        ("sharing", False),
        ("profiling", False),
    ]
    assert response.json["consents"][0]["text"] == str(TEXTS["email"].text)
    assert response.json["consents"][0]["text_version"] == TEXTS["email"].version
    assert response.json["history"] == []


def test_a_put_appends_each_change_with_its_text_version_and_the_apps_client(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session)
    member = _member(session)
    app = f.client(session, shop, CONSENTING, redirect_uris=["https://app.example/cb"])
    headers = f.bearer(session, app["client_id"], CONSENTING, member_id=member)

    granted = client.put(
        "/api/v1/me/consents", json={"email": True, "sharing": True}, headers=headers
    )
    again = client.put("/api/v1/me/consents", json={"email": True}, headers=headers)
    withdrawn = client.put("/api/v1/me/consents", json={"email": False}, headers=headers)

    assert granted.status_code == again.status_code == withdrawn.status_code == 200
    states = {c["purpose"]: c["granted"] for c in withdrawn.json["consents"]}
    assert states == {
        "email": False,
        "sms": False,
        "post": False,
        "sharing": True,
        "profiling": False,
    }
    history = [
        (h["purpose"], h["granted"], h["text_version"], h["source"], h["client_id"])
        for h in withdrawn.json["history"]
    ]
    # The repeated grant recorded nothing: the history holds changes.
    assert history == [
        ("email", True, TEXTS["email"].version, "api", app["client_id"]),
        ("sharing", True, TEXTS["sharing"].version, "api", app["client_id"]),
        ("email", False, TEXTS["email"].version, "api", app["client_id"]),
    ]


def test_an_empty_put_changes_nothing(client: FlaskClient, session: Session) -> None:
    shop = f.merchant(session)
    member = _member(session)
    _grant(session, member, sms=True)
    app = f.client(session, shop, CONSENTING, redirect_uris=["https://app.example/cb"])
    headers = f.bearer(session, app["client_id"], CONSENTING, member_id=member)

    response = client.put("/api/v1/me/consents", json={}, headers=headers)

    assert response.status_code == 200
    assert [(h["purpose"], h["granted"]) for h in response.json["history"]] == [("sms", True)]


def test_changing_consents_needs_its_own_scope(client: FlaskClient, session: Session) -> None:
    shop = f.merchant(session)
    member = _member(session)
    headers = f.member_headers(session, shop, member)  # balance:read redeem

    response = client.put("/api/v1/me/consents", json={"email": True}, headers=headers)

    assert (response.status_code, response.json["code"]) == (403, "insufficient_scope")
    listed = client.get("/api/v1/me/consents", headers=headers).json
    assert listed["history"] == []


@pytest.mark.parametrize(
    "body",
    [{"email": "yes"}, {"email": 1}, {"fax": True}, {"email": None}, [True]],
)
def test_a_bad_consent_body_is_refused_and_records_nothing(
    client: FlaskClient, session: Session, body: Any
) -> None:
    shop = f.merchant(session)
    member = _member(session)
    app = f.client(session, shop, CONSENTING, redirect_uris=["https://app.example/cb"])
    headers = f.bearer(session, app["client_id"], CONSENTING, member_id=member)

    response = client.put("/api/v1/me/consents", json=body, headers=headers)

    assert (response.status_code, response.json["code"]) == (422, "validation_error")
    assert client.get("/api/v1/me/consents", headers=headers).json["history"] == []


def test_a_merchant_token_cannot_read_or_change_consents(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session)
    headers = f.merchant_headers(session, shop)
    for method in ("GET", "PUT"):
        response = client.open(
            "/api/v1/me/consents", method=method, json={"email": True}, headers=headers
        )
        assert (response.status_code, response.json["code"]) == (403, "wrong_token_kind")


# The audience -------------------------------------------------------------------------------


def test_the_audience_holds_consenting_shoppers_with_the_channels_contact(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session)
    headers = f.merchant_headers(session, shop, "audience:read")
    both = _member(session, "both@example.org", "+49 1", "Both")
    no_sharing = _member(session, "nosharing@example.org", "+49 2", "No Sharing")
    no_email = _member(session, "noemail@example.org", "+49 3", "No Email")
    withdrew = _member(session, "withdrew@example.org", "+49 4", "Withdrew")
    never_shopped = _member(session, "never@example.org", "+49 5", "Never")
    no_phone = _member(session, "nophone@example.org", None, "No Phone")
    for member in (both, no_sharing, no_email, withdrew, no_phone):
        f.purchase(session, member, shop, 10)
    for member in (both, withdrew, never_shopped, no_phone):
        _grant(session, member, email=True, sms=True, sharing=True)
    _grant(session, no_sharing, email=True, sms=True)
    _grant(session, no_email, sms=True, sharing=True)
    _grant(session, withdrew, sharing=False)

    by_email = _audience(client, headers, "email")
    by_sms = _audience(client, headers, "sms")
    by_post = _audience(client, headers, "post")

    assert by_email == {
        "data": [
            {
                "member": _public_id(session, no_phone),
                "name": "No Phone",
                "email": "nophone@example.org",
                "phone": None,
            },
            {
                "member": _public_id(session, both),
                "name": "Both",
                "email": "both@example.org",
                "phone": None,
            },
        ],
        "next_cursor": None,
    }
    # Without a phone there is no text message to send; sms needs no email consent.
    assert by_sms["data"] == [
        {
            "member": _public_id(session, no_email),
            "name": "No Email",
            "email": None,
            "phone": "+49 3",
        },
        {"member": _public_id(session, both), "name": "Both", "email": None, "phone": "+49 1"},
    ]
    assert by_post["data"] == []  # nobody granted post


def test_the_audience_pages_by_cursor(client: FlaskClient, session: Session) -> None:
    shop = f.merchant(session)
    headers = f.merchant_headers(session, shop, "audience:read")
    made = []
    for n in range(5):
        member = _member(session, f"m{n}@example.org", None, f"M{n}")
        f.purchase(session, member, shop, 10)
        _grant(session, member, email=True, sharing=True)
        made.append(_public_id(session, member))

    first = _audience(client, headers, "email", limit=2)
    second = _audience(client, headers, "email", limit=2, cursor=first["next_cursor"])
    third = _audience(client, headers, "email", limit=2, cursor=second["next_cursor"])

    seen = [m["member"] for page in (first, second, third) for m in page["data"]]
    assert seen == list(reversed(made))
    assert third["next_cursor"] is None


def test_a_merchant_never_sees_another_merchants_shoppers(
    client: FlaskClient, session: Session
) -> None:
    alpha, beta = f.merchant(session, "Alpha"), f.merchant(session, "Beta")
    only_alpha = _member(session, "alpha@example.org", "+49 1", "Only Alpha")
    both = _member(session, "both@example.org", "+49 2", "Both Shops")
    f.purchase(session, only_alpha, alpha, 10)
    f.purchase(session, both, alpha, 10)
    f.purchase(session, both, beta, 10)
    for member in (only_alpha, both):
        _grant(session, member, email=True, sms=True, post=True, sharing=True)

    for channel in ("email", "sms", "post"):
        seen = _audience(client, f.merchant_headers(session, beta, "audience:read"), channel)
        assert [m["member"] for m in seen["data"]] == [_public_id(session, both)]


def test_a_redemption_alone_does_not_put_a_member_in_the_audience(
    client: FlaskClient, session: Session
) -> None:
    alpha, beta = f.merchant(session, "Alpha"), f.merchant(session, "Beta")
    member = _member(session)
    f.purchase(session, member, alpha, 100)
    f.redeem(session, member, beta, 10)
    _grant(session, member, email=True, sharing=True)

    seen = _audience(client, f.merchant_headers(session, beta, "audience:read"), "email")

    assert seen["data"] == []


def test_the_audience_needs_its_scope_and_a_known_channel(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session)
    without = f.merchant_headers(session, shop, "members:read")
    response = client.get("/api/v1/audience?channel=email", headers=without)
    assert (response.status_code, response.json["code"]) == (403, "insufficient_scope")
    headers = f.merchant_headers(session, shop, "audience:read")
    for query in ("?channel=fax", "?channel=", "?channel=email&limit=0"):
        response = client.get("/api/v1/audience" + query, headers=headers)
        assert (response.status_code, response.json["code"]) == (422, "validation_error"), query
    # No channel: email, the SPEC's direct mail.
    assert client.get("/api/v1/audience", headers=headers).json == {"data": [], "next_cursor": None}
    member = _member(session)
    response = client.get(
        "/api/v1/audience?channel=email", headers=f.member_headers(session, shop, member)
    )
    assert (response.status_code, response.json["code"]) == (403, "wrong_token_kind")


# The export ---------------------------------------------------------------------------------


def test_the_export_holds_the_profile_consents_card_and_every_transaction(
    client: FlaskClient, session: Session
) -> None:
    alpha, beta = f.merchant(session, "Alpha"), f.merchant(session, "Beta")
    member = _member(session)
    _grant(session, member, email=True)
    for _ in range(60):  # more than one page of /me/transactions
        f.purchase(session, member, alpha, 2)
    f.redeem(session, member, beta, 30)
    card = session.execute(select(members.c.card_number).where(members.c.id == member)).scalar_one()

    response = client.get("/api/v1/me/export", headers=f.member_headers(session, beta, member))

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["profile"]["email"] == "mia@example.org"
    assert body["profile"]["phone"] == "+49 30 1234567"
    assert body["profile"]["name"] == "Mia Muster"
    assert body["cards"] == [{"card_number": card, "status": "active"}]
    assert body["balance"] == {"points": 90, "debt": 0}
    assert [(h["purpose"], h["granted"]) for h in body["history"]] == [("email", True)]
    assert len(body["transactions"]) == 61
    assert body["transactions_complete"] is True
    assert [t["type"] for t in body["transactions"]] == ["earn"] * 60 + ["redeem"]
    assert body["transactions"][0]["amount"] == {"amount": 200, "currency": "EUR"}
    assert body["transactions"][-1]["merchant"]["name"] == "Beta"


def test_the_export_shows_nothing_of_another_member(client: FlaskClient, session: Session) -> None:
    shop = f.merchant(session)
    mine, theirs = _member(session), _member(session, "other@example.org", "+1 2", "Other")
    f.purchase(session, theirs, shop, 10)
    _grant(session, theirs, email=True)

    body = client.get("/api/v1/me/export", headers=f.member_headers(session, shop, mine)).json

    assert body["profile"]["email"] == "mia@example.org"
    assert body["transactions"] == [] and body["history"] == []


# Erasure ------------------------------------------------------------------------------------


def test_erasure_through_the_api_removes_the_contact_and_revokes_every_token(
    client: FlaskClient, session: Session
) -> None:
    alpha, beta = f.merchant(session, "Alpha"), f.merchant(session, "Beta")
    member = _member(session)
    f.purchase(session, member, alpha, 120)
    app = f.client(session, alpha, "balance:read account:delete", redirect_uris=["https://a/cb"])
    headers = f.bearer(session, app["client_id"], "balance:read account:delete", member_id=member)
    elsewhere = f.member_headers(session, beta, member)
    public_id = _public_id(session, member)

    response = client.delete("/api/v1/me", headers=headers)

    assert response.status_code == 200
    assert response.json["id"] == public_id
    assert response.json["points_written_off"] == 120
    row = session.execute(select(members).where(members.c.id == member)).one()
    assert (row.email, row.phone, row.name, row.password_hash) == (None, None, None, None)
    assert row.status == "blocked" and row.erased_at is not None
    assert (
        session.execute(
            select(oauth_tokens.c.id).where(
                oauth_tokens.c.member_id == member, oauth_tokens.c.revoked_at.is_(None)
            )
        ).all()
        == []
    )
    for token in (headers, elsewhere):
        again = client.get("/api/v1/me", headers=token)
        assert (again.status_code, again.json["code"]) == (401, "invalid_token")


def test_erasure_needs_its_own_scope(client: FlaskClient, session: Session) -> None:
    shop = f.merchant(session)
    member = _member(session)
    headers = f.member_headers(session, shop, member)

    response = client.delete("/api/v1/me", headers=headers)

    assert (response.status_code, response.json["code"]) == (403, "insufficient_scope")
    assert client.get("/api/v1/me", headers=headers).json["email"] == "mia@example.org"


def test_an_erased_member_leaves_the_audience_and_its_email_may_join_again(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session)
    member = _member(session)
    f.purchase(session, member, shop, 10)
    _grant(session, member, email=True, sharing=True)
    headers = f.merchant_headers(session, shop, "audience:read")
    assert len(_audience(client, headers, "email")["data"]) == 1

    privacy.erase(session, member, source=privacy.ME, now=T0)

    assert _audience(client, headers, "email")["data"] == []
    joined = client.post(
        "/api/v1/member-signups",
        json={"email": "mia@example.org", "password": "a long enough password"},
    )
    assert joined.status_code == 201
    assert joined.json["id"] != _public_id(session, member)
