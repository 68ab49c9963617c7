"""Privacy on the member site (SPEC 2, 3.9): a member ticks and unticks its consents and sees
each change in its history, downloads all its data as JSON, and erases itself after typing
its email and ticking a box; it is signed out and cannot sign in again."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition.database import table
from coalition.members import attributes, credentials
from coalition.members.models import Member
from coalition.privacy import reads as privacy_reads
from coalition.privacy.texts import TEXTS
from tests import factories as f
from tests.factories import T0

pytestmark = pytest.mark.both_backends
members = table(Member)
PASSWORD = "a long enough password"


def _token(client: FlaskClient, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert found is not None, html
    return found.group(1)


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _signed_in(
    client: FlaskClient, session: Session, email: str, name: str = "Pia", points: int = 0
) -> int:
    """A member who joined, earned `points` at a shop, then signed in (the page's transactions
    act as the member; a till writes in its own, before)."""
    member = credentials.join(
        session, now=T0, card_prefix="9999", email=email, password=PASSWORD, name=name
    ).id
    if points:
        f.purchase(session, member, f.merchant(session, "Apotheke"), points)
    token = _token(client, "/me/sign-in")
    answer = client.post(
        "/me/sign-in", data={"email": email, "password": PASSWORD, "csrf_token": token}
    )
    assert answer.status_code == 303
    return member


def _save(client: FlaskClient, **ticked: bool) -> Any:
    data = {"csrf_token": _token(client, "/me/privacy")}
    data.update({purpose: "y" for purpose, on in ticked.items() if on})
    return client.post("/me/privacy", data=data)


def test_the_privacy_page_shows_each_text_unticked_until_the_member_ticks_it(
    client: FlaskClient, session: Session
) -> None:
    _signed_in(client, session, "pia@example.org")

    html = client.get("/me/privacy").get_data(as_text=True)

    for purpose, text in TEXTS.items():
        assert str(text.text) in html
        assert text.version in html
        assert re.search(
            rf'<input id="{purpose}" name="{purpose}" type="checkbox" value="y">', html
        )
    assert "You have not given any consent." in html


def test_ticking_and_unticking_records_each_change_in_the_history(
    client: FlaskClient, session: Session
) -> None:
    member = _signed_in(client, session, "pia@example.org")

    saved = _save(client, email=True, sharing=True)
    assert saved.status_code == 303
    assert "Your choices are saved." in client.get("/me/privacy").get_data(as_text=True)
    _save(client, sharing=True)  # email withdrawn, sharing kept
    html = client.get("/me/privacy").get_data(as_text=True)

    assert re.search(r'<input checked id="sharing"', html)
    assert not re.search(r'<input checked id="email"', html)
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)[1:]
    cells = [[_text(c) for c in re.findall(r"<td>(.*?)</td>", row, re.S)][1:] for row in rows]
    assert cells == [
        ["Offers by email", "Withdrawn", TEXTS["email"].version, "This site"],
        [
            "Sharing my contact details with partners",
            "Granted",
            TEXTS["sharing"].version,
            "This site",
        ],
        ["Offers by email", "Granted", TEXTS["email"].version, "This site"],
    ]
    current = privacy_reads.current_consents(session, member)
    assert {p: r.granted for p, r in current.items()} == {"email": False, "sharing": True}


def test_saving_without_the_csrf_token_changes_nothing(
    client: FlaskClient, session: Session
) -> None:
    member = _signed_in(client, session, "pia@example.org")

    answer = client.post("/me/privacy", data={"email": "y", "sharing": "y"})

    assert answer.status_code in (200, 400)
    assert privacy_reads.current_consents(session, member) == {}


def test_the_download_is_the_members_data_as_json(client: FlaskClient, session: Session) -> None:
    _signed_in(client, session, "pia@example.org", name="Pia Download", points=42)
    _save(client, post=True)

    response = client.get("/me/export.json")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="my-data-')
    document = json.loads(response.get_data(as_text=True))
    assert document["profile"]["email"] == "pia@example.org"
    assert document["profile"]["name"] == "Pia Download"
    assert [(t["type"], t["points"]) for t in document["transactions"]] == [("earn", 42)]
    assert [(h["purpose"], h["granted"], h["source"]) for h in document["history"]] == [
        ("post", True, "me")
    ]
    assert 'href="/me/export.json"' in client.get("/me/privacy").get_data(as_text=True)


def test_the_pages_need_a_signed_in_member(client: FlaskClient) -> None:
    for path in ("/me/privacy", "/me/export.json", "/me/erase"):
        answer = client.get(path)
        assert answer.status_code == 302 and "/me/sign-in" in answer.headers["Location"], path


def test_erasure_asks_for_the_email_and_the_box_and_then_signs_the_member_out(
    client: FlaskClient, session: Session
) -> None:
    member = _signed_in(client, session, "pia@example.org", points=75)
    page = client.get("/me/erase").get_data(as_text=True)
    assert "your 75 points are given up" in _text(page)

    token = _token(client, "/me/erase")
    wrong_email = client.post(
        "/me/erase", data={"email": "other@example.org", "confirm": "y", "csrf_token": token}
    )
    no_box = client.post("/me/erase", data={"email": "pia@example.org", "csrf_token": token})
    assert wrong_email.status_code == no_box.status_code == 200
    assert "This is not the email address of your membership." in wrong_email.get_data(as_text=True)
    assert "Tick the box to confirm." in no_box.get_data(as_text=True)
    status = session.execute(select(members.c.status).where(members.c.id == member)).scalar_one()
    assert status == "active"

    done = client.post(
        "/me/erase", data={"email": "PIA@example.org ", "confirm": "y", "csrf_token": token}
    )

    assert done.status_code == 303 and done.headers["Location"] == "/me/sign-in"
    assert "Your membership is erased." in client.get("/me/sign-in").get_data(as_text=True)
    assert client.get("/me/").status_code == 302  # signed out
    row = session.execute(select(members).where(members.c.id == member)).one()
    assert (row.email, row.name, row.status) == (None, None, "blocked")
    token = _token(client, "/me/sign-in")
    again = client.post(
        "/me/sign-in", data={"email": "pia@example.org", "password": PASSWORD, "csrf_token": token}
    )
    assert again.status_code == 200 and "The email or password is not right." in again.get_data(
        as_text=True
    )


def test_erasure_without_the_csrf_token_erases_nothing(
    client: FlaskClient, session: Session
) -> None:
    member = _signed_in(client, session, "pia@example.org")

    answer = client.post("/me/erase", data={"email": "pia@example.org", "confirm": "y"})

    assert answer.status_code in (200, 400)
    status = session.execute(select(members.c.status).where(members.c.id == member)).scalar_one()
    assert status == "active"


def test_the_about_me_page_saves_attributes_and_says_they_need_the_profiling_consent(
    client: FlaskClient, session: Session
) -> None:
    member = _signed_in(client, session, "ada@example.org")

    page = client.get("/me/about").get_data(as_text=True)
    saved = client.post(
        "/me/about",
        data={
            "csrf_token": _token(client, "/me/about"),
            "birth_date": "1985-02-03",
            "household_size": "4",
            "interests": ["pets", "sports"],
            "region": "south",
        },
    )
    refused = client.post(
        "/me/about",
        data={"csrf_token": _token(client, "/me/about"), "household_size": "40"},
    )

    assert "only if you agree to “Offers chosen for me”" in page
    assert "You have not agreed to offers chosen for you, so none of this is used." in page
    assert saved.status_code == 303
    assert refused.status_code == 200
    assert attributes.attributes_of(session, member) == {
        "birth_date": date(1985, 2, 3),
        "household_size": 4,
        "interests": ["pets", "sports"],
        "region": "south",
    }
