"""A merchant's pending window (SPEC 2, Pending points) from its side and its members': set by
API and in the portal within the operator's bounds; a purchase there awards points the till
shows but cannot spend, until the nightly job confirms them (time travel with the injected
clock); the member sees them pending in `/me` and `/api/v1/me/balance`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import clock, economics
from coalition.errors import InvalidRequest
from coalition.jobs import run_daily_jobs
from coalition.ledger import reads
from coalition.ledger.rows import Actor
from coalition.members import codes
from coalition.members.models import Member
from merchants import purchases, services
from merchants.schemas import PurchaseSchema
from tests import factories as f
from tests.merchants.test_portal_pages import _merchant, _post, _sign_in, _text

WINDOW = "/api/v1/pending-window"
TILL = Actor("merchant_client", "till-1")
# A Monday morning in Berlin (CET, UTC+1).
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def moment(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The injected clock, moved by hand."""
    now = [MONDAY]
    monkeypatch.setattr(clock, "utcnow", lambda: now[0])
    return now


def narrow_bounds(session: Session, shortest: int, longest: int) -> None:
    terms = economics.DEFAULT_TERMS.to_json() | {"pending_days_bounds": [shortest, longest]}
    economics.set_version(
        session,
        effective_from=date(2026, 1, 1),
        settings=terms,
        merchant_id=None,
        actor_id="test",
        now=MONDAY,
    )
    economics.forget()


def card_of(session: Session, member_id: int) -> str:
    return session.execute(select(Member.card_number).where(Member.id == member_id)).scalar_one()


def buy(session: Session, shop: int, member_id: int, euros: int, receipt: str, when: datetime):
    line = PurchaseSchema().load(
        {
            "member": card_of(session, member_id),
            "amount": euros * 100,
            "currency": "EUR",
            "external_id": receipt,
        }
    )
    return purchases.record_purchase(session, merchant_id=shop, purchase=line, actor=TILL, now=when)


@pytest.mark.both_backends
def test_the_merchant_sets_its_window_by_api_within_the_operators_bounds(
    client: FlaskClient, session: Session, moment: list[datetime]
) -> None:
    shop, other = f.merchant(session, "Shoes"), f.merchant(session, "Books")
    till, theirs = f.merchant_headers(session, shop), f.merchant_headers(session, other)

    assert client.get(WINDOW, headers=till).get_json() == {
        "pending_days": 0,
        "bounds": [0, 60],
        "in_force": 0,
    }
    put = client.put(WINDOW, json={"pending_days": 14}, headers=till)
    assert put.status_code == 200, put.get_json()
    assert put.get_json() == {"pending_days": 14, "bounds": [0, 60], "in_force": 14}
    # Putting it again changes nothing more.
    assert client.put(WINDOW, json={"pending_days": 14}, headers=till).get_json()["in_force"] == 14
    # Another merchant's window is its own.
    assert client.get(WINDOW, headers=theirs).get_json()["pending_days"] == 0

    too_long = client.put(WINDOW, json={"pending_days": 61}, headers=till)
    assert too_long.status_code == 422
    assert "pending_days" in too_long.get_json()["errors"]
    for bad in ({"pending_days": "7"}, {"pending_days": 1.5}, {}, {"pending_days": 7, "x": 1}):
        assert client.put(WINDOW, json=bad, headers=till).status_code == 422, bad

    narrow_bounds(session, 0, 30)
    refused = client.put(WINDOW, json={"pending_days": 45}, headers=till)
    assert refused.status_code == 422
    assert refused.get_json()["errors"] == {"pending_days": ["must be between 0 and 30 days"]}
    assert client.get(WINDOW, headers=till).get_json() == {
        "pending_days": 14,
        "bounds": [0, 30],
        "in_force": 14,
    }
    # A member's token is not the merchant's.
    member = f.member(session)
    assert client.get(WINDOW, headers=f.member_headers(session, shop, member)).status_code == 403


@pytest.mark.both_backends
def test_narrower_bounds_cap_a_window_chosen_before_them(session: Session, moment) -> None:
    shop, alice = f.merchant(session), f.member(session)
    services.set_pending_days(session, shop, 40, now=MONDAY)
    narrow_bounds(session, 0, 10)

    assert services.pending_window(session, shop, MONDAY).in_force == 10
    with pytest.raises(InvalidRequest):
        services.set_pending_days(session, shop, 11, now=MONDAY)
    bought = buy(session, shop, alice, 20, "R-1", MONDAY)
    assert bought.transaction.points == 120  # 20 and the welcome bonus, all pending
    [pending] = reads_pending_dates(session, alice)
    assert pending == {"points": 120, "spendable_from": date(2026, 3, 13)}


def reads_pending_dates(session: Session, member_id: int) -> list[dict[str, Any]]:
    from coalition.members import reads as member_reads

    return member_reads.points(session, member_id, MONDAY, "Europe/Berlin")["pending_dates"]


@pytest.mark.both_backends
def test_points_wait_for_the_night_after_the_window_and_the_job_confirms_them_once(
    client: FlaskClient, session: Session, moment: list[datetime]
) -> None:
    shop, alice = f.merchant(session, "Shoes"), f.member(session)
    services.set_pending_days(session, shop, 3, now=MONDAY)
    bought = buy(session, shop, alice, 40, "R-1", MONDAY)
    assert bought.transaction.points == 140
    session.commit()
    card = card_of(session, alice)

    def lookup() -> dict[str, Any]:
        # A till's token lives an hour: one made now, whenever now is.
        till = f.merchant_headers(session, shop)
        return client.get(f"/api/v1/members/{card}", headers=till).get_json()

    def redeem(points: int, receipt: str) -> Any:
        secret = session.execute(select(Member.totp_secret).where(Member.id == alice)).scalar_one()
        body = {
            "member": card,
            "code": codes.current_code(secret, moment[0])[0],
            "points": points,
            "external_id": receipt,
        }
        return client.post(
            "/api/v1/redemptions", json=body, headers=f.merchant_headers(session, shop)
        )

    assert (lookup()["balance"], lookup()["available"]) == (140, 0)
    refused = redeem(10, "X-1")
    assert refused.status_code == 422
    assert refused.get_json()["code"] == "insufficient_points"

    # Thursday 02:00 in Berlin: the window ended Thursday 10:00, not yet.
    moment[0] = datetime(2026, 3, 5, 1, 0, tzinfo=UTC)
    run_daily_jobs(now=moment[0].isoformat())
    assert lookup()["available"] == 0
    # Friday 02:00: the night after the window ends, the job confirms them.
    moment[0] = datetime(2026, 3, 6, 1, 0, tzinfo=UTC)
    done = run_daily_jobs(now=moment[0].isoformat())
    assert done["confirm-points"] == ["2026-03-05"]
    assert (lookup()["balance"], lookup()["available"]) == (140, 140)
    # The job run again (and the next hour's run) confirms nothing twice.
    moment[0] += timedelta(hours=1)
    assert run_daily_jobs(now=moment[0].isoformat())["confirm-points"] == []
    assert reads.balance(session, alice, moment[0])["pending"] == 0
    spent = redeem(140, "X-2")
    assert spent.status_code == 201, spent.get_json()


@pytest.mark.both_backends
def test_the_member_sees_its_pending_points_and_when_they_can_be_spent(
    client: FlaskClient, session: Session, moment: list[datetime]
) -> None:
    from tests.coalition.test_me_pages import _registered
    from tests.coalition.test_me_pages import _sign_in as member_sign_in

    alice = _registered(session, "pending@example.org")
    shop = f.merchant(session, "Shoes")
    services.set_pending_days(session, shop, 10, now=MONDAY)
    f.purchase(session, alice, shop, 50)
    # 40 points, pending (the welcome bonus went with the first purchase).
    buy(session, shop, alice, 40, "R-1", MONDAY)

    balance = client.get(
        "/api/v1/me/balance", headers=f.member_headers(session, shop, alice)
    ).get_json()
    assert (balance["points"], balance["available"], balance["pending"]) == (90, 50, 40)
    assert balance["pending_dates"] == [{"points": 40, "spendable_from": "2026-03-13"}]

    member_sign_in(client, "pending@example.org")
    text = _text(client.get("/me/").get_data(as_text=True))
    assert "Balance 90" in text and "Available to spend 50" in text
    assert "40 points pending, spendable from Mar 13, 2026." in text


@pytest.mark.both_backends
def test_the_portal_shows_the_window_and_changes_it(
    client: FlaskClient, session: Session, moment: list[datetime]
) -> None:
    shop = _merchant(session, "window@shop.example")
    other = _merchant(session, "other@shop.example", name="Other")
    _sign_in(client, "window@shop.example")

    page = client.get("/portal/settings")
    assert page.status_code == 200
    text = _text(page.get_data(as_text=True))
    assert "Your pending window 0 days" in text and "Allowed by the coalition 0 to 60 days" in text

    saved = _post(client, "/portal/settings", "/portal/settings", pending_days="21")
    assert saved.status_code == 303
    assert services.pending_window(session, shop, MONDAY).pending_days == 21
    assert "pending 21 days" in _text(client.get("/portal/settings").get_data(as_text=True))

    refused = _post(client, "/portal/settings", "/portal/settings", pending_days="90")
    assert refused.status_code == 422
    assert "a pending window of 90 days is outside the operator" in _text(
        refused.get_data(as_text=True)
    )
    assert services.pending_window(session, shop, MONDAY).pending_days == 21
    # Without its CSRF token the form changes nothing.
    assert client.post("/portal/settings", data={"pending_days": "5"}).status_code == 400
    # The other merchant's window was never touched.
    assert services.pending_window(session, other, MONDAY).pending_days == 0
