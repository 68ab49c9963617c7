"""The OAuth 2 server (SPEC 3.2) as its users meet it: a merchant's till and the operator get
tokens with their client secret, a merchant's app gets a member's consent through the sign-in
and consent pages, and everyone relies on revocation, introspection, rotation and suspension
doing what they say. The flows run over real HTTP against a live server, driven by Authlib's
own requests client and a requests.Session playing the member's browser."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from flask import Flask
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from coalition import clock
from coalition.errors import NotFound
from coalition.extensions import db
from coalition.members.services import create_member
from coalition.oauth import clients, scopes, tokens
from coalition.oauth.server import find_client
from merchants.services import create_merchant, suspend_merchant
from tests import factories as f
from tests.factories import T0
from tests.oauth_helpers import (
    REDIRECT_URI,
    follow,
    form,
    live_server,
    oauth_app,
    query_of,
    sign_in_and_answer,
    submit,
)

PASSWORD = "correct horse battery staple"
APP_SCOPES = "balance:read redeem purchases:write"
TILL_SCOPES = "purchases:write members:read"


@dataclass
class Coalition:
    """A small coalition on a live server: two merchants, a member, and their clients."""

    url: str
    app: Flask
    bakery: str  # merchants' public ids
    butcher: str
    member: str  # the member's public id
    till: dict  # the bakery's till: merchant scopes
    shop_app: dict  # the bakery's app: member scopes, a redirect URI
    butcher_till: dict
    operator: dict

    def endpoint(self, path: str) -> str:
        return self.url + path

    def session(self, credentials: dict, **options) -> OAuth2Session:
        return OAuth2Session(credentials["client_id"], credentials["client_secret"], **options)

    def client_token(self, credentials: dict, **options) -> dict:
        with self.session(credentials) as software:
            return software.fetch_token(
                self.endpoint("/oauth/token"), grant_type="client_credentials", **options
            )

    def introspect(self, credentials: dict, token: str) -> dict:
        with self.session(credentials) as software:
            answer = software.introspect_token(self.endpoint("/oauth/introspect"), token=token)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def member_app(self) -> OAuth2Session:
        return self.session(
            self.shop_app,
            scope="balance:read redeem",
            redirect_uri=REDIRECT_URI,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_post",
        )


@pytest.fixture
def coalition(committed: Flask, make_app) -> Iterator[Coalition]:
    with committed.app_context():
        session = db.session()
        bakery_id, bakery = create_merchant(session, "Bakery", now=T0)
        butcher_id, butcher = create_merchant(session, "Butcher", now=T0)
        _, member = create_member(
            session,
            email="Ada@Example.org",
            password_hash=generate_password_hash(PASSWORD),
            now=T0,
        )
        till = f.client(session, bakery_id, TILL_SCOPES)
        shop_app = clients.create_client(
            session,
            name="Bakery Rewards",
            merchant_id=bakery_id,
            scopes=scopes.parse(APP_SCOPES),
            redirect_uris=[REDIRECT_URI],
            now=T0,
        )
        butcher_till = f.client(session, butcher_id, TILL_SCOPES)
        operator = f.client(session, None, "operator")
        session.commit()
    app = oauth_app(make_app)
    with live_server(app) as url:
        yield Coalition(url, app, bakery, butcher, member, till, shop_app, butcher_till, operator)


def authorization_url(world: Coalition, software: OAuth2Session, **params) -> tuple[str, str]:
    """Where the app sends the member, and the PKCE verifier it keeps."""
    verifier = generate_token(48)
    url, _state = software.create_authorization_url(
        world.endpoint("/oauth/authorize"), code_verifier=verifier, **params
    )
    return url, verifier


def member_token(world: Coalition, software: OAuth2Session) -> dict:
    url, verifier = authorization_url(world, software)
    with requests.Session() as browser:
        back = sign_in_and_answer(browser, url, "ada@example.org", PASSWORD)
    return software.fetch_token(
        world.endpoint("/oauth/token"), authorization_response=back, code_verifier=verifier
    )


def rotate_secret_of(world: Coalition, client_id: str, token: dict) -> requests.Response:
    """The operator's API route, called with `token`."""
    with OAuth2Session(token=token) as caller:
        return caller.post(world.endpoint(f"/api/v1/ops/clients/{client_id}/rotate-secret"))


# client_credentials


def test_the_operator_gets_a_token_with_http_basic_and_uses_it_on_the_api(coalition):
    token = coalition.client_token(coalition.operator)

    assert token["token_type"] == "Bearer"
    assert token["scope"] == "operator"
    assert token["expires_in"] == 3600
    assert token["access_token"].startswith("at_")
    assert "refresh_token" not in token
    rotated = rotate_secret_of(coalition, coalition.till["client_id"], token)
    assert rotated.status_code == 201, rotated.text
    assert rotated.json()["client_id"] == coalition.till["client_id"]


def test_a_till_authenticating_in_the_body_gets_its_merchant_scopes_and_never_a_member_one(
    coalition,
):
    with coalition.session(
        coalition.shop_app, token_endpoint_auth_method="client_secret_post"
    ) as software:
        token = software.fetch_token(
            coalition.endpoint("/oauth/token"), grant_type="client_credentials"
        )
        with pytest.raises(OAuthError) as refused:
            software.fetch_token(
                coalition.endpoint("/oauth/token"),
                grant_type="client_credentials",
                scope="balance:read",
            )

    assert token["scope"] == "purchases:write"  # the app's merchant scope, not balance:read
    assert refused.value.error == "invalid_scope"


@pytest.mark.both_backends
def test_a_till_gets_and_checks_a_token_on_the_embedded_default_too(session, client):
    till = f.client(session, f.merchant(session), TILL_SCOPES)
    basic = (till["client_id"], till["client_secret"])

    issued = client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=basic)
    token = issued.get_json()["access_token"]
    seen = client.post("/oauth/introspect", data={"token": token}, auth=basic).get_json()
    client.post("/oauth/revoke", data={"token": token}, auth=basic)
    after = client.post("/oauth/introspect", data={"token": token}, auth=basic).get_json()

    assert issued.status_code == 200
    assert issued.headers["Cache-Control"] == "no-store"
    assert seen["active"] is True
    assert seen["scope"] == "members:read purchases:write"
    assert after == {"active": False}


def test_a_redirect_uri_of_control_characters_is_a_bad_link_not_a_server_error(session, client):
    app = f.client(session, f.merchant(session), "balance:read", redirect_uris=[REDIRECT_URI])
    session.commit()

    answer = client.get(
        "/oauth/authorize",
        query_string={
            "client_id": app["client_id"],
            "response_type": "code",
            "code_challenge": "x" * 43,
            "code_challenge_method": "S256",
            "redirect_uri": "\U000310aa\x99+",
        },
    )

    assert answer.status_code == 400
    assert "This sign-in link does not work" in answer.get_data(as_text=True)


def test_a_till_may_narrow_its_scope_but_not_widen_it(coalition):
    narrow = coalition.client_token(coalition.till, scope="members:read")
    with pytest.raises(OAuthError) as refused:
        coalition.client_token(coalition.till, scope="members:read statements:read")

    assert narrow["scope"] == "members:read"
    assert refused.value.error == "invalid_scope"


def test_a_wrong_secret_is_refused_as_an_invalid_client(coalition):
    wrong = {**coalition.till, "client_secret": "cs_not-the-secret"}

    with pytest.raises(OAuthError) as refused:
        coalition.client_token(wrong)
    answer = requests.post(
        coalition.endpoint("/oauth/token"),
        data={"grant_type": "client_credentials"},
        auth=(wrong["client_id"], wrong["client_secret"]),
        timeout=10,
    )

    assert refused.value.error == "invalid_client"
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"  # RFC 6749 body, not a problem


# authorization_code with PKCE


def test_a_members_app_gets_a_member_token_after_the_member_signs_in_and_consents(coalition):
    with coalition.member_app() as software:
        token = member_token(coalition, software)

    assert token["scope"] == "balance:read redeem"
    assert token["refresh_token"].startswith("rt_")
    assert token["expires_in"] == 3600
    seen = coalition.introspect(coalition.shop_app, token["access_token"])
    assert seen["active"] is True
    assert seen["sub"] == coalition.member
    assert seen["merchant"] == coalition.bakery
    assert seen["client_id"] == coalition.shop_app["client_id"]
    assert seen["token_type"] == "Bearer"
    assert seen["exp"] - seen["iat"] == 3600


def test_the_consent_page_names_the_app_and_says_in_plain_words_what_it_may_do(coalition):
    with coalition.member_app() as software, requests.Session() as browser:
        url, _ = authorization_url(coalition, software)
        signin_page = browser.get(url)
        consent_page = follow(
            browser,
            submit(browser, signin_page, "signin", email="ada@example.org", password=PASSWORD),
        )

    assert "Sign in" in signin_page.text
    assert 'autocomplete="current-password"' in signin_page.text
    assert "Allow Bakery Rewards to use your points account?" in consent_page.text
    assert "the app of <strong>Bakery</strong>" in consent_page.text
    assert "See your points balance" in consent_page.text
    assert "Spend your points" in consent_page.text
    assert "app.example" in consent_page.text
    assert consent_page.headers["X-Frame-Options"] == "DENY"
    cookie = signin_page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # testing; production sets it


def test_a_wrong_password_shows_the_form_again_without_saying_which_part_was_wrong(coalition):
    with coalition.member_app() as software, requests.Session() as browser:
        url, _ = authorization_url(coalition, software)
        page = browser.get(url)
        wrong_password = submit(browser, page, "signin", email="ada@example.org", password="x")
        unknown_email = submit(browser, page, "signin", email="bob@example.org", password="x")

    for answer in (wrong_password, unknown_email):
        assert answer.status_code == 200
        assert "The email or password is wrong." in answer.text
        assert form(answer.text, "signin").action


def test_denying_consent_sends_the_member_back_to_the_app_with_access_denied(coalition):
    with coalition.member_app() as software, requests.Session() as browser:
        url, _ = authorization_url(coalition, software, state="xyz")
        back = sign_in_and_answer(browser, url, "ada@example.org", PASSWORD, decision="deny")

    assert back.startswith(REDIRECT_URI + "?")
    assert query_of(back)["error"] == "access_denied"
    assert query_of(back)["state"] == "xyz"
    assert "code" not in query_of(back)


@pytest.mark.parametrize(
    "pkce",
    [
        {"code_challenge": "a" * 43, "code_challenge_method": "plain"},
        {"code_challenge": "a" * 43},  # no method means plain
        {},
    ],
    ids=["plain", "method missing", "no code_challenge"],
)
def test_an_authorization_request_without_s256_pkce_is_sent_back_refused(coalition, pkce):
    with OAuth2Session(coalition.shop_app["client_id"], redirect_uri=REDIRECT_URI) as software:
        url, _state = software.create_authorization_url(
            coalition.endpoint("/oauth/authorize"), scope="balance:read", **pkce
        )
    answer = requests.get(url, allow_redirects=False, timeout=10)

    assert answer.status_code == 302
    back = answer.headers["Location"]
    assert back.startswith(REDIRECT_URI + "?")
    assert query_of(back)["error"] == "invalid_request"


@pytest.mark.parametrize("scope", ["purchases:write", "balance:read operator", "nonsense"])
def test_an_app_asking_a_member_for_more_than_member_scopes_is_sent_back_refused(coalition, scope):
    with coalition.member_app() as software:
        url, _ = authorization_url(coalition, software, scope=scope)
    answer = requests.get(url, allow_redirects=False, timeout=10)

    assert answer.status_code == 302
    assert query_of(answer.headers["Location"])["error"] == "invalid_scope"


def test_a_code_with_the_wrong_verifier_gets_no_token(coalition):
    with coalition.member_app() as software, requests.Session() as browser:
        url, _verifier = authorization_url(coalition, software)
        back = sign_in_and_answer(browser, url, "ada@example.org", PASSWORD)
        with pytest.raises(OAuthError) as refused:
            software.fetch_token(
                coalition.endpoint("/oauth/token"),
                authorization_response=back,
                code_verifier=generate_token(48),
            )

    assert refused.value.error == "invalid_grant"


def test_a_code_used_twice_is_refused_and_the_token_it_gave_is_revoked(coalition):
    with coalition.member_app() as software, requests.Session() as browser:
        url, verifier = authorization_url(coalition, software)
        back = sign_in_and_answer(browser, url, "ada@example.org", PASSWORD)
        first = software.fetch_token(
            coalition.endpoint("/oauth/token"), authorization_response=back, code_verifier=verifier
        )
        with pytest.raises(OAuthError) as refused:
            software.fetch_token(
                coalition.endpoint("/oauth/token"),
                authorization_response=back,
                code_verifier=verifier,
            )

    assert refused.value.error == "invalid_grant"
    assert coalition.introspect(coalition.shop_app, first["access_token"]) == {"active": False}


def test_an_unregistered_redirect_uri_gets_an_error_page_and_never_a_redirect(coalition):
    with OAuth2Session(
        coalition.shop_app["client_id"],
        redirect_uri="https://evil.example/steal",
        code_challenge_method="S256",
    ) as software:
        url, _ = authorization_url(coalition, software)
    answer = requests.get(url, allow_redirects=False, timeout=10)

    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert "This sign-in link does not work" in answer.text


def test_an_unknown_client_gets_an_error_page(coalition):
    with OAuth2Session(
        "cli_nobody", redirect_uri=REDIRECT_URI, code_challenge_method="S256"
    ) as software:
        url, _ = authorization_url(coalition, software)
    answer = requests.get(url, allow_redirects=False, timeout=10)

    assert answer.status_code == 400
    assert "Location" not in answer.headers


# refresh, revocation, introspection


def test_refreshing_rotates_the_refresh_token_and_the_old_one_stops_working(coalition):
    with coalition.member_app() as software:
        first = member_token(coalition, software)
        second = software.refresh_token(
            coalition.endpoint("/oauth/token"), refresh_token=first["refresh_token"]
        )
        third = software.refresh_token(
            coalition.endpoint("/oauth/token"), refresh_token=second["refresh_token"]
        )

    assert len({first["refresh_token"], second["refresh_token"], third["refresh_token"]}) == 3
    assert second["access_token"] != first["access_token"]
    assert third["scope"] == "balance:read redeem"
    assert coalition.introspect(coalition.shop_app, first["access_token"]) == {"active": False}
    assert coalition.introspect(coalition.shop_app, second["access_token"]) == {"active": False}
    assert coalition.introspect(coalition.shop_app, third["access_token"])["active"] is True


def test_a_refresh_token_used_twice_revokes_its_whole_family_and_nothing_else(coalition, caplog):
    """RFC 9700 4.14.2: the server cannot tell the client from a thief holding a copy, so the
    replay of a rotated refresh token ends every token of that authorization."""
    with coalition.member_app() as software:
        first = member_token(coalition, software)
        other_authorization = member_token(coalition, software)
        second = software.refresh_token(
            coalition.endpoint("/oauth/token"), refresh_token=first["refresh_token"]
        )
        with pytest.raises(OAuthError) as replayed:
            software.refresh_token(
                coalition.endpoint("/oauth/token"), refresh_token=first["refresh_token"]
            )
        with pytest.raises(OAuthError) as newest:
            software.refresh_token(
                coalition.endpoint("/oauth/token"), refresh_token=second["refresh_token"]
            )
    till = coalition.client_token(coalition.till)

    assert replayed.value.error == newest.value.error == "invalid_grant"
    assert coalition.introspect(coalition.shop_app, second["access_token"]) == {"active": False}
    assert coalition.introspect(coalition.shop_app, second["refresh_token"]) == {"active": False}
    # Another authorization of the same member and app, and another client, are untouched.
    assert coalition.introspect(coalition.shop_app, other_authorization["access_token"])["active"]
    assert coalition.introspect(coalition.till, till["access_token"])["active"] is True
    assert "refresh token reused: its family is revoked" in caplog.text


def test_a_revoked_token_is_inactive_and_the_api_refuses_it(coalition):
    token = coalition.client_token(coalition.operator)

    with coalition.session(coalition.operator) as software:
        revoked = software.revoke_token(
            coalition.endpoint("/oauth/revoke"), token=token["access_token"]
        )

    assert revoked.status_code == 200
    assert coalition.introspect(coalition.operator, token["access_token"]) == {"active": False}
    refused = rotate_secret_of(coalition, coalition.till["client_id"], token)
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"


def test_a_merchant_can_neither_introspect_nor_revoke_another_merchants_token(coalition):
    token = coalition.client_token(coalition.till)

    seen = coalition.introspect(coalition.butcher_till, token["access_token"])
    with coalition.session(coalition.butcher_till) as butcher:
        revoked = butcher.revoke_token(
            coalition.endpoint("/oauth/revoke"), token=token["access_token"]
        )

    assert seen == {"active": False}
    assert revoked.status_code == 200  # as for an unknown token: nothing learnt, nothing done
    own = coalition.introspect(coalition.till, token["access_token"])
    assert own["active"] is True
    assert own["merchant"] == coalition.bakery
    assert own["sub"] is None


def test_the_metadata_document_describes_the_server(coalition):
    document = requests.get(
        coalition.endpoint("/.well-known/oauth-authorization-server"), timeout=10
    ).json()

    AuthorizationServerMetadata(document).validate()
    assert document["issuer"] == coalition.url
    assert document["token_endpoint"] == coalition.endpoint("/oauth/token")
    assert document["authorization_endpoint"] == coalition.endpoint("/oauth/authorize")
    assert document["revocation_endpoint"] == coalition.endpoint("/oauth/revoke")
    assert document["introspection_endpoint"] == coalition.endpoint("/oauth/introspect")
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert set(document["grant_types_supported"]) == {
        "authorization_code",
        "client_credentials",
        "refresh_token",
    }
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert {"balance:read", "redeem", "operator", "purchases:write"} <= set(
        document["scopes_supported"]
    )


# client secrets, revocation and suspension


@pytest.mark.both_backends
def test_an_old_secret_works_during_the_grace_period_and_not_after(session):
    shop = f.merchant(session)
    till = f.client(session, shop, TILL_SCOPES)

    rotated = clients.rotate_secret(session, till["client_id"], T0, grace=timedelta(hours=24))

    assert rotated["previous_secret_expires_at"] == T0 + timedelta(hours=24)
    during = find_client(session, till["client_id"], T0 + timedelta(hours=23))
    after = find_client(session, till["client_id"], T0 + timedelta(hours=24, seconds=1))
    assert during.check_client_secret(till["client_secret"])
    assert during.check_client_secret(rotated["client_secret"])
    assert not after.check_client_secret(till["client_secret"])
    assert after.check_client_secret(rotated["client_secret"])


@pytest.mark.both_backends
def test_rotating_twice_never_extends_the_first_secrets_grace(session):
    till = f.client(session, f.merchant(session), TILL_SCOPES)

    clients.rotate_secret(session, till["client_id"], T0, grace=timedelta(hours=1))
    clients.rotate_secret(session, till["client_id"], T0, grace=timedelta(hours=24))

    later = find_client(session, till["client_id"], T0 + timedelta(hours=2))
    assert not later.check_client_secret(till["client_secret"])


@pytest.mark.both_backends
def test_the_operator_rotates_a_secret_over_the_api_and_sees_the_new_one_once(session, client):
    till = f.client(session, f.merchant(session), TILL_SCOPES)

    answer = client.post(
        f"/api/v1/ops/clients/{till['client_id']}/rotate-secret",
        headers=f.operator_headers(session),
    )

    assert answer.status_code == 201
    body = answer.get_json()
    assert set(body) == {"client_id", "client_secret", "previous_secret_expires_at"}
    assert body["client_secret"].startswith("cs_")
    now = clock.utcnow()
    live = find_client(session, till["client_id"], now)
    assert live.check_client_secret(body["client_secret"])
    assert live.check_client_secret(till["client_secret"])  # inside its 24 hours


def test_only_the_operator_may_rotate_or_revoke_over_the_api(session, client):
    shop = f.merchant(session)
    till = f.client(session, shop, TILL_SCOPES)

    answer = client.post(
        f"/api/v1/ops/clients/{till['client_id']}/revoke",
        headers=f.merchant_headers(session, shop),
    )
    unknown = client.post(
        "/api/v1/ops/clients/cli_nobody/rotate-secret", headers=f.operator_headers(session)
    )

    assert answer.status_code == 403
    assert answer.get_json()["code"] == "wrong_token_kind"
    assert unknown.status_code == 404
    assert unknown.get_json()["code"] == "not_found"


@pytest.mark.both_backends
def test_a_merchant_cannot_rotate_or_revoke_another_merchants_client(session):
    bakery, butcher = f.merchant(session, "Bakery"), f.merchant(session, "Butcher")
    till = f.client(session, bakery, TILL_SCOPES)

    with pytest.raises(NotFound):
        clients.rotate_secret(session, till["client_id"], T0, merchant_id=butcher)
    with pytest.raises(NotFound):
        clients.revoke_client(session, till["client_id"], T0, merchant_id=butcher)
    assert clients.rotate_secret(session, till["client_id"], T0, merchant_id=bakery)


def test_an_old_secret_keeps_working_inside_its_grace_and_stops_when_it_ends(coalition):
    operator_token = coalition.client_token(coalition.operator)
    rotated = rotate_secret_of(coalition, coalition.till["client_id"], operator_token).json()
    newest = {**coalition.till, "client_secret": rotated["client_secret"]}

    assert coalition.client_token(coalition.till)["access_token"]  # old, inside 24 hours
    assert coalition.client_token(newest)["access_token"]

    with coalition.app.app_context():
        latest = clients.rotate_secret(
            db.session(), coalition.till["client_id"], clock.utcnow(), grace=timedelta(0)
        )
        db.session.commit()
    for ended in (coalition.till, newest):
        with pytest.raises(OAuthError) as refused:
            coalition.client_token(ended)
        assert refused.value.error == "invalid_client"
    assert coalition.client_token({**coalition.till, "client_secret": latest["client_secret"]})


def test_revoking_a_client_kills_its_tokens_and_its_secret(coalition):
    till_token = coalition.client_token(coalition.till)
    operator_token = coalition.client_token(coalition.operator)

    with OAuth2Session(token=operator_token) as operator:
        answer = operator.post(
            coalition.endpoint(f"/api/v1/ops/clients/{coalition.till['client_id']}/revoke")
        )

    assert answer.status_code == 200
    assert answer.json()["client_id"] == coalition.till["client_id"]
    with coalition.app.app_context():
        assert tokens.authenticate(db.session(), till_token["access_token"], clock.utcnow()) is None
    with pytest.raises(OAuthError) as refused:
        coalition.client_token(coalition.till)
    assert refused.value.error == "invalid_client"


def test_a_suspended_merchants_tokens_stop_working_at_once(coalition):
    till_token = coalition.client_token(coalition.till)
    with coalition.member_app() as app_software:
        member = member_token(coalition, app_software)

    before = rotate_secret_of(coalition, coalition.operator["client_id"], till_token)
    with coalition.app.app_context():
        suspend_merchant(db.session(), coalition.bakery, clock.utcnow())
        db.session.commit()
    after = rotate_secret_of(coalition, coalition.operator["client_id"], till_token)

    assert before.status_code == 403  # a live merchant token, on an operator route
    assert after.status_code == 401  # not a token any more
    assert after.json()["code"] == "invalid_token"
    with coalition.app.app_context():
        for token in (till_token, member):
            assert tokens.authenticate(db.session(), token["access_token"], clock.utcnow()) is None
    with pytest.raises(OAuthError) as refused:
        coalition.client_token(coalition.till)
    assert refused.value.error == "invalid_client"


# the pages' protections


def test_a_sign_in_form_posted_without_its_csrf_token_is_refused(coalition):
    with coalition.member_app() as software, requests.Session() as browser:
        url, _ = authorization_url(coalition, software)
        page = browser.get(url)
        signin = form(page.text, "signin")
        fields = {k: v for k, v in signin.fields.items() if k != "csrf_token"}
        answer = browser.post(
            page.url,
            data={**fields, "email": "ada@example.org", "password": PASSWORD},
            allow_redirects=False,
        )

    assert answer.status_code == 400
    assert "This form has expired" in answer.text


def test_too_many_sign_in_attempts_from_one_address_get_429(make_app, coalition):
    strict = oauth_app(make_app, RATE_LIMIT_SIGNIN="2/minute")
    with (
        live_server(strict) as url,
        coalition.member_app() as software,
        requests.Session() as browser,
    ):
        authorize, _ = software.create_authorization_url(
            url + "/oauth/authorize", code_verifier=generate_token(48)
        )
        page = browser.get(authorize)
        answers = [
            submit(browser, page, "signin", email="ada@example.org", password="guess")
            for _ in range(3)
        ]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert "Too many sign-in attempts" in answers[2].text
    assert int(answers[2].headers["Retry-After"]) > 0


def test_plain_http_is_refused_in_production_and_allowed_in_development_and_tests(make_app):
    production = oauth_app(make_app, COALITION_ENV="production")
    testing = oauth_app(make_app)
    body = {"grant_type": "client_credentials", "client_id": "cli_x", "client_secret": "cs_x"}

    plain = production.test_client().post(
        "/oauth/token", data=body, base_url="http://coalition.example"
    )
    tls = production.test_client().post(
        "/oauth/token", data=body, base_url="https://coalition.example"
    )
    test_http = testing.test_client().post(
        "/oauth/token", data=body, base_url="http://coalition.example"
    )

    assert plain.status_code == 400
    assert plain.get_json()["error"] == "insecure_transport"
    assert tls.get_json()["error"] == "invalid_client"  # past the transport check
    assert test_http.get_json()["error"] == "invalid_client"
    assert production.config["SESSION_COOKIE_SECURE"] is True
    assert testing.config["SESSION_COOKIE_SECURE"] is False


def test_the_operator_makes_a_client_on_the_command_line_and_gets_an_operator_token(
    committed, runner, coalition
):
    result = runner.invoke(args=["ops", "create-client", "Back office", "--json"])

    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert set(created) == {"client_id", "client_secret"}
    assert created["client_id"].startswith("cli_")
    assert coalition.client_token(created)["scope"] == "operator"


# client ids no client can have


def _basic(user: bytes, password: bytes = b"x") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(user + b":" + password).decode()}


JUNK_CLIENT_IDS = ["\x00", "cli_\x00abc", "cli_" + "a" * 5000]


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
@pytest.mark.parametrize("junk", JUNK_CLIENT_IDS, ids=["NUL", "NUL inside", "very long"])
@pytest.mark.parametrize("way", ["basic", "form"])
def test_a_client_id_no_client_can_have_is_an_invalid_client_and_writes_nothing(
    session, client, path, junk, way
):
    form = {"grant_type": "client_credentials", "token": "at_whatever"}
    if way == "basic":
        answer = client.post(path, data=form, auth=(junk, "cs_x"))
    else:
        answer = client.post(path, data={**form, "client_id": junk, "client_secret": "cs_x"})

    # RFC 6749 5.2: 401 when the client tried the Authorization header, else 400.
    assert answer.status_code == (401 if way == "basic" else 400), answer.data[:300]
    assert answer.get_json()["error"] == "invalid_client"  # RFC 6749's form, decision 47
    assert session.execute(select(func.count()).select_from(tokens.tokens)).scalar_one() == 0


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_basic_credentials_that_are_not_utf8_are_an_invalid_client(client, path):
    answer = client.post(
        path, data={"grant_type": "client_credentials", "token": "x"}, headers=_basic(b"\xff\xfe")
    )

    assert answer.status_code == 401, answer.data[:300]
    assert answer.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize("junk", JUNK_CLIENT_IDS, ids=["NUL", "NUL inside", "very long"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_sign_in_link_with_a_client_id_no_client_can_have_gets_the_error_page(
    client, junk, method
):
    params = {"response_type": "code", "client_id": junk, "redirect_uri": REDIRECT_URI}
    if method == "GET":
        answer = client.get("/oauth/authorize", query_string=params)
    else:
        answer = client.post("/oauth/authorize", data=params)

    assert answer.status_code == 400, answer.data[:300]
    assert "Location" not in answer.headers
    assert "This sign-in link does not work" in answer.get_data(as_text=True)


def test_an_email_no_member_can_have_is_a_wrong_sign_in_not_a_crash(session, client):
    app_client = f.client(
        session, f.merchant(session), "balance:read", redirect_uris=[REDIRECT_URI]
    )
    link = {
        "response_type": "code",
        "client_id": app_client["client_id"],
        "redirect_uri": REDIRECT_URI,
        "scope": "balance:read",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    page = client.get("/oauth/authorize", query_string=link)
    signin = form(page.get_data(as_text=True), "signin")

    answer = client.post(
        signin.action, data={**signin.fields, "email": "ada\x00@example.org", "password": "x"}
    )

    assert answer.status_code == 200, answer.data[:300]
    assert "The email or password is wrong." in answer.get_data(as_text=True)


# what the sign-in link's errors say


def test_a_sign_in_link_without_parameters_says_what_is_wrong_in_one_sentence(client):
    answer = client.get("/oauth/authorize")

    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "This sign-in link does not work" in page
    assert (
        "Details for the app's developers: the link has no response_type; "
        "send response_type=code." in page
    )
    assert "None" not in page


def test_an_unsupported_response_type_is_sent_back_to_the_app_in_one_sentence(session, client):
    app_client = f.client(
        session, f.merchant(session), "balance:read", redirect_uris=[REDIRECT_URI]
    )

    answer = client.get(
        "/oauth/authorize",
        query_string={
            "response_type": "token",
            "client_id": app_client["client_id"],
            "redirect_uri": REDIRECT_URI,
            "state": "s1",
        },
    )

    assert answer.status_code == 302
    back = query_of(answer.headers["Location"])
    assert back["error"] == "unsupported_response_type"
    assert (
        back["error_description"]
        == "response_type token is not supported; send response_type=code."
    )
    assert back["state"] == "s1"
