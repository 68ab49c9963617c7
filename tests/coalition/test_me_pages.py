"""The member site, `/me` (SPEC 3.9): a member joins or signs in with the email and password of
the OAuth consent page, sees one balance across every shop with each shop's part and what
expires when, pages through a history that names the shops, and shows the rotating code as a QR
code with its digits. A member sees only its own points."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from coalition import clock, tenancy
from coalition.database import table
from coalition.ledger.models import Account
from coalition.members import credentials, reads
from coalition.members.models import Member
from coalition.oauth import clients, scopes
from coalition.oauth import views as oauth_views
from merchants import purchases
from tests import factories as f
from tests.factories import T0, TILL
from tests.oauth_helpers import REDIRECT_URI

members = table(Member)
accounts = table(Account)
PASSWORD = "a long enough password"


def _token(client: FlaskClient, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert found is not None, html
    return found.group(1)


def _join(client: FlaskClient, email: str, name: str | None = "Dora") -> Any:
    data = {"email": email, "password": PASSWORD, "csrf_token": _token(client, "/me/join")}
    if name:
        data["name"] = name
    return client.post("/me/join", data=data)


def _sign_in(client: FlaskClient, email: str, password: str = PASSWORD) -> Any:
    token = _token(client, "/me/sign-in")
    return client.post(
        "/me/sign-in", data={"email": email, "password": password, "csrf_token": token}
    )


def _member(session: Session, email: str) -> tuple[int, int]:
    """A member's id and points account by email."""
    row = session.execute(
        select(members.c.id, accounts.c.id.label("account_id"))
        .join(accounts, accounts.c.member_id == members.c.id)
        .where(members.c.email == email)
    ).one()
    return row.id, row.account_id


def _registered(session: Session, email: str, name: str | None = None) -> int:
    new = credentials.join(
        session, now=T0, card_prefix="9999", email=email, password=PASSWORD, name=name
    )
    return new.id


def _text(html: str) -> str:
    """The page's text, tags dropped and blanks collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _row(html: str, *cells: str) -> bool:
    """Whether the page has a table row whose cells read `cells`, in order."""
    for row in re.findall(r"<tr>(.*?)</tr>", html, flags=re.S):
        found = [_text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]
        if found == list(cells):
            return True
    return False


@pytest.mark.both_backends
def test_a_visitor_joins_is_signed_in_and_is_promised_the_welcome_bonus(
    client: FlaskClient, session: Session
) -> None:
    joined = _join(client, "Dora.Join@Example.org")
    assert joined.status_code == 303 and joined.headers["Location"] == "/me/"

    home = client.get("/me/")
    assert home.status_code == 200
    text = _text(home.get_data(as_text=True))
    assert "Dora, your points" in text
    assert "Balance 0" in text
    assert "your first purchase at any partner shop adds 100 points" in text

    # The first purchase anywhere brings the welcome bonus, from the coalition. (The page's
    # transaction, as the member, ends first: a till writes in its own.)
    session.commit()
    member_id, _ = _member(session, "dora.join@example.org")
    shop = f.merchant(session, "Apotheke")
    card = session.execute(
        select(members.c.card_number).where(members.c.id == member_id)
    ).scalar_one()
    purchases.record_purchase(
        session,
        merchant_id=shop,
        purchase={"member": card, "amount": 8000, "currency": "EUR", "external_id": "r-1"},
        actor=TILL,
        now=clock.utcnow(),
    )
    html = client.get("/me/").get_data(as_text=True)
    assert "Balance 180" in _text(html)
    assert _row(html, "Apotheke", "80")
    assert _row(html, "Coalition: welcome bonus", "100")
    assert "adds 100 points" not in html


@pytest.mark.both_backends
def test_joining_with_a_registered_email_says_so(client: FlaskClient, session: Session) -> None:
    _registered(session, "taken@example.org")
    answer = _join(client, "TAKEN@example.org")
    assert answer.status_code == 200
    assert "This email is already registered. Sign in instead." in answer.get_data(as_text=True)
    assert client.get("/me/").status_code == 302  # not signed in


def test_a_short_password_is_refused_with_the_reason(client: FlaskClient) -> None:
    token = _token(client, "/me/join")
    answer = client.post(
        "/me/join", data={"email": "short@example.org", "password": "short", "csrf_token": token}
    )
    assert answer.status_code == 200
    assert "Between 10 and 200 characters." in answer.get_data(as_text=True)


@pytest.mark.both_backends
def test_one_balance_with_each_shops_part_and_what_expires_when(
    client: FlaskClient, session: Session
) -> None:
    member_id = _registered(session, "two.shops@example.org")
    pharmacy = f.merchant(session, "Apotheke")
    bakery = f.merchant(session, "Bäckerei")
    march = datetime(2028, 3, 1, 10, 0, tzinfo=UTC)  # 1 March in Berlin
    f.purchase(session, member_id, pharmacy, 120, expires_at=march)
    f.purchase(session, member_id, pharmacy, 30, expires_at=march + timedelta(hours=2))
    f.purchase(session, member_id, bakery, 50, expires_at=datetime(2028, 6, 1, 10, tzinfo=UTC))
    # Spent at the bakery: 40 of the pharmacy's points, soonest-expiring first.
    f.redeem(session, member_id, bakery, 40)
    _sign_in(client, "two.shops@example.org")

    html = client.get("/me/").get_data(as_text=True)

    text = _text(html)
    assert "Balance 160" in text and "Available to spend 160" in text
    assert "Tier Member" in text
    assert _row(html, "Apotheke", "110") and _row(html, "Bäckerei", "50")
    # What expires is grouped by the coalition's business date.
    assert _row(html, "Mar 1, 2028", "110") and _row(html, "Jun 1, 2028", "50")
    assert _row(html, "Bäckerei", "50", "40") and _row(html, "Apotheke", "150", "0")


@pytest.mark.both_backends
def test_the_history_names_each_shop_and_pages_by_25(client: FlaskClient, session: Session) -> None:
    member_id = _registered(session, "history@example.org")
    pharmacy = f.merchant(session, "Apotheke")
    bakery = f.merchant(session, "Bäckerei")
    for n in range(28):
        f.purchase(session, member_id, pharmacy, 10 + n, now=T0 + timedelta(minutes=n))
    f.redeem(session, member_id, bakery, 7, now=T0 + timedelta(hours=1))
    _sign_in(client, "history@example.org")

    first = client.get("/me/history").get_data(as_text=True)
    assert len(re.findall(r"<tbody>.*?</tbody>", first, re.S)) == 1
    assert first.count("<tr>") == 1 + 25  # the heading row and 25 lines
    assert _row(first, "Mar 2, 2026 12:00 PM", "Bäckerei", "Spent", "-7")  # 11:00 UTC, Berlin
    assert _row(first, "Mar 2, 2026 11:27 AM", "Apotheke", "Earned", "+37")
    assert 'href="/me/history?page=2"' in first and "?page=0" not in first

    second = client.get("/me/history?page=2").get_data(as_text=True)
    assert second.count("<tr>") == 1 + 4
    assert _row(second, "Mar 2, 2026 11:00 AM", "Apotheke", "Earned", "+10")
    assert 'href="/me/history?page=1"' in second and "page=3" not in second
    assert "There is nothing on this page." in client.get("/me/history?page=9").get_data(
        as_text=True
    )


def test_a_member_never_sees_another_members_points(client: FlaskClient, session: Session) -> None:
    mine = _registered(session, "mine@example.org")
    theirs = _registered(session, "theirs@example.org")
    f.purchase(session, mine, f.merchant(session, "Apotheke"), 10)
    f.purchase(session, theirs, f.merchant(session, "Juwelier"), 4321)
    _sign_in(client, "mine@example.org")

    for path in ("/me/", "/me/history", "/me/history?page=1&member=theirs@example.org"):
        html = client.get(path).get_data(as_text=True)
        assert "Apotheke" in html and "Juwelier" not in html and "4,321" not in html, path
    # The second wall: as this member's tenant, the database itself hides the other's rows
    # even from a read that forgot its filter.
    _, their_account = _member(session, "theirs@example.org")
    _, my_account = _member(session, "mine@example.org")
    with tenancy.acting_as(tenancy.Tenant.member(my_account), session):
        assert reads.history(session, their_account, 1, 25) == ([], False)
        assert len(reads.history(session, my_account, 1, 25)[0]) == 1


def test_the_code_page_shows_a_qr_code_and_the_digits_and_a_new_code_after_its_step(
    client: FlaskClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    _registered(session, "code@example.org")
    _sign_in(client, "code@example.org")
    start = datetime(2026, 11, 28, 12, 0, 10, tzinfo=UTC)  # 20 seconds before its step ends
    monkeypatch.setattr(clock, "utcnow", lambda: start)

    def shown() -> tuple[str, str, str]:
        html = client.get("/me/code").get_data(as_text=True)
        svg = re.search(r"<svg .*?</svg>", html, re.S)
        digits = re.search(r'<p class="digits" id="code-digits">(\d{6})</p>', html)
        refresh = re.search(r'<meta http-equiv="refresh" content="(\d+)">', html)
        assert svg is not None and digits is not None and refresh is not None, html
        assert 'role="img"' in svg.group(0) and "<title>" in svg.group(0)
        return svg.group(0), digits.group(1), refresh.group(1)

    svg, code, refresh = shown()
    assert refresh == "20"  # the page fetches the next code when this one's step ends
    assert shown() == (svg, code, refresh)

    monkeypatch.setattr(clock, "utcnow", lambda: start + timedelta(seconds=30))
    later_svg, later_code, later_refresh = shown()
    assert later_code != code and later_svg != svg
    assert later_refresh == "20"


def test_a_wrong_password_is_an_error_and_many_lock_the_account(
    client: FlaskClient, session: Session
) -> None:
    _registered(session, "locked@example.org")
    wrong = _sign_in(client, "locked@example.org", "not the password")
    assert wrong.status_code == 200
    assert "The email or password is not right." in wrong.get_data(as_text=True)
    for _ in range(4):
        _sign_in(client, "locked@example.org", "still not it")
    locked = _sign_in(client, "locked@example.org")
    assert locked.status_code == 429
    assert "Too many attempts" in locked.get_data(as_text=True)
    assert client.get("/me/").status_code == 302


@pytest.mark.both_backends
def test_signing_out_ends_the_session(client: FlaskClient, session: Session) -> None:
    _registered(session, "out@example.org")
    signed_in = _sign_in(client, "out@example.org")
    assert signed_in.status_code == 303 and signed_in.headers["Location"] == "/me/"
    assert client.get("/me/").status_code == 200
    token = re.search(
        r'name="csrf_token" value="([^"]+)"', client.get("/me/").get_data(as_text=True)
    )
    assert token is not None
    out = client.post("/me/sign-out", data={"csrf_token": token.group(1)})
    assert out.status_code == 303 and out.headers["Location"] == "/me/sign-in"
    after = client.get("/me/history")
    assert after.status_code == 302
    assert after.headers["Location"] == "/me/sign-in?next=/me/history"


def test_a_signed_out_visitor_comes_back_to_the_page_it_asked_for(
    client: FlaskClient, session: Session
) -> None:
    _registered(session, "next@example.org")
    assert client.get("/me/code").headers["Location"] == "/me/sign-in?next=/me/code"
    token = _token(client, "/me/sign-in?next=/me/code")
    answer = client.post(
        "/me/sign-in",
        data={"email": "next@example.org", "password": PASSWORD, "csrf_token": token},
    )
    assert answer.headers["Location"] == "/me/code"
    # Never to another site.
    with client.session_transaction() as cookie:
        cookie.clear()
    token = _token(client, "/me/sign-in?next=https://evil.example/")
    answer = client.post(
        "/me/sign-in",
        data={"email": "next@example.org", "password": PASSWORD, "csrf_token": token},
    )
    assert answer.headers["Location"] == "/me/"


@pytest.mark.both_backends
def test_a_form_posted_without_its_csrf_token_is_refused(
    client: FlaskClient, session: Session
) -> None:
    _registered(session, "csrf@example.org")
    for path, data in (
        ("/me/sign-in", {"email": "csrf@example.org", "password": PASSWORD}),
        ("/me/join", {"email": "csrf-join@example.org", "password": PASSWORD}),
        ("/me/sign-out", {}),
    ):
        refused = client.post(path, data=data)
        assert refused.status_code == 400, path
        assert "This form has expired" in refused.get_data(as_text=True)
    assert client.get("/me/").status_code == 302


def test_one_sign_in_serves_the_member_site_and_the_consent_page(
    client: FlaskClient, session: Session
) -> None:
    _registered(session, "both@example.org")
    shop = f.merchant(session, "Bakery")
    app = clients.create_client(
        session,
        name="Bakery Rewards",
        merchant_id=shop,
        scopes=scopes.parse("balance:read"),
        redirect_uris=[REDIRECT_URI],
        now=T0,
    )
    _sign_in(client, "both@example.org")
    with client.session_transaction() as cookie:
        assert cookie[oauth_views.SESSION_MEMBER].startswith("mbr_")

    consent = client.get(
        "/oauth/authorize",
        query_string={
            "response_type": "code",
            "client_id": app["client_id"],
            "redirect_uri": REDIRECT_URI,
            "scope": "balance:read",
            "code_challenge": "x" * 43,
            "code_challenge_method": "S256",
        },
    )
    html = consent.get_data(as_text=True)
    assert consent.status_code == 200 and "Allow Bakery Rewards" in html
    assert "Signed in as both@example.org" in html
    # Signed in, the sign-in and join pages lead on.
    assert client.get("/me/sign-in?next=/me/code").headers["Location"] == "/me/code"
    assert client.get("/me/join").headers["Location"] == "/me/"


def test_the_member_pages_carry_the_strict_headers(client: FlaskClient, session: Session) -> None:
    _registered(session, "headers@example.org")

    def check(path: str) -> None:
        response = client.get(path)
        assert response.status_code == 200, path
        assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"
        html = response.get_data(as_text=True)
        assert "<script>" not in html and "<style" not in html and " style=" not in html, path

    for path in ("/me/sign-in", "/me/join"):
        check(path)
    _sign_in(client, "headers@example.org")
    for path in ("/me/", "/me/history", "/me/code"):
        check(path)
    with client.get("/me/static/code.js") as script:
        assert script.status_code == 200 and "javascript" in script.mimetype


@pytest.mark.both_backends
def test_a_member_blocked_since_signing_in_is_signed_out(
    client: FlaskClient, session: Session
) -> None:
    member_id = _registered(session, "blocked@example.org")
    _sign_in(client, "blocked@example.org")
    assert client.get("/me/").status_code == 200
    session.execute(update(members).where(members.c.id == member_id).values(status="blocked"))
    assert client.get("/me/").headers["Location"] == "/me/sign-in?next=/me/"
    refused = _sign_in(client, "blocked@example.org")
    assert "The email or password is not right." in refused.get_data(as_text=True)
