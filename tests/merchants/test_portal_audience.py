"""The portal's audience (SPEC 2): a merchant sees how many consenting members who shopped
there it may contact by each channel, a page of them, and downloads them as CSV; never another
merchant's shoppers."""

from __future__ import annotations

import csv
import io

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from coalition.members.services import create_member
from coalition.privacy import services as privacy
from tests import factories as f
from tests.factories import T0
from tests.merchants.test_portal_pages import _merchant, _sign_in, _text

pytestmark = pytest.mark.both_backends


def _shopper(
    session: Session, shop: int, address: str, phone: str | None, name: str, **wanted: bool
) -> int:
    member = create_member(session, now=T0, email=address, phone=phone, name=name)[0]
    f.purchase(session, member, shop, 10)
    privacy.set_consents(session, member, wanted, source=privacy.ME, now=T0)
    return member


def _csv(client: FlaskClient, channel: str) -> list[list[str]]:
    response = client.get(f"/portal/audience.csv?channel={channel}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert (
        response.headers["Content-Disposition"] == f'attachment; filename="audience-{channel}.csv"'
    )
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_the_audience_page_counts_each_channel_and_the_csv_lists_it(
    client: FlaskClient, session: Session
) -> None:
    shop = _merchant(session, "shop@example.org")
    _shopper(session, shop, "ann@example.org", "+49 1", "Ann", email=True, sms=True, sharing=True)
    _shopper(session, shop, "bob@example.org", "+49 2", "=Bob", email=True, sharing=True)
    _shopper(session, shop, "cid@example.org", "+49 3", "Cid", email=True)  # shares nothing
    _sign_in(client, "shop@example.org")

    page = client.get("/portal/audience").get_data(as_text=True)
    sms_page = client.get("/portal/audience?channel=sms").get_data(as_text=True)

    assert "By email 2 By text message 1 By post 0" in _text(page)
    assert "ann@example.org" in page and "bob@example.org" in page and "cid@example.org" not in page
    assert 'href="/portal/audience.csv?channel=email"' in page
    assert "+49 1" in sms_page and "ann@example.org" not in sms_page
    by_email = _csv(client, "email")
    assert by_email[0] == ["member", "name", "email", "phone"]
    # Oldest member first; a name that a spreadsheet would run as a formula is kept as text.
    assert [row[1:] for row in by_email[1:]] == [
        ["Ann", "ann@example.org", ""],
        ["'=Bob", "bob@example.org", ""],
    ]
    assert [row[1:] for row in _csv(client, "sms")[1:]] == [["Ann", "", "+49 1"]]
    assert _csv(client, "post") == [["member", "name", "email", "phone"]]


def test_a_merchant_never_sees_another_merchants_shoppers_in_its_audience(
    client: FlaskClient, session: Session
) -> None:
    alpha = _merchant(session, "alpha@example.org", "Alpha")
    beta = _merchant(session, "beta@example.org", "Beta")
    _shopper(
        session, alpha, "only.alpha@example.org", "+49 1", "Only Alpha", email=True, sharing=True
    )
    _sign_in(client, "beta@example.org")

    page = client.get("/portal/audience").get_data(as_text=True)

    assert "only.alpha@example.org" not in page
    assert "By email 0" in _text(page)
    assert _csv(client, "email") == [["member", "name", "email", "phone"]]
    assert beta != alpha


def test_the_audience_needs_a_signed_in_merchant(client: FlaskClient) -> None:
    for path in ("/portal/audience", "/portal/audience.csv?channel=email"):
        answer = client.get(path)
        assert answer.status_code == 302 and "/portal/sign-in" in answer.headers["Location"]
