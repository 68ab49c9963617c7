"""Entries paid with points (SPEC 2, 3.4): each call is one redemption at the operator, so the
points leave the member's lots as any redemption does and `verify-ledger` holds (the conftest
checks it after every test); a retry under one Idempotency-Key buys nothing twice; too few
points is the usual 422; no entry lands after the close, even one racing it."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from coalition import clock, tenancy
from coalition.extensions import db
from coalition.ledger.rows import Actor
from draws import services
from tests import factories
from tests.draws import independent
from tests.draws.helpers import OPERATOR, open_draw, purchase_now
from tests.draws.test_draws_api import factories_public_id
from tests.races import race


def _system(session: Session, sql: str, **params: object) -> list[tuple[object, ...]]:
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return [tuple(row) for row in session.execute(text(sql), params).all()]


@pytest.mark.both_backends
def test_entries_are_a_redemption_at_the_operator(client: FlaskClient, session: Session) -> None:
    shop = factories.merchant(session, "Books")
    member = factories.member(session)
    purchase_now(session, member, shop, 100_000)  # 1,000 points
    draw = open_draw(session, entry_points=100)
    headers = {**factories.member_headers(session, shop, member), "Idempotency-Key": "enter-1"}

    entered = client.post(f"/api/v1/me/draws/{draw}/entries", json={"count": 3}, headers=headers)
    again = client.post(f"/api/v1/me/draws/{draw}/entries", json={"count": 3}, headers=headers)

    assert entered.status_code == 201, entered.json
    body = entered.json
    assert (body["draw"], body["entries"], body["points"], body["my_paid_entries"]) == (
        draw,
        3,
        300,
        3,
    )
    assert body["member"] == {"balance": 700, "available": 700}
    assert again.json == body and again.headers["Idempotent-Replayed"] == "true"
    [(kind, points, merchant, purpose)] = _system(
        session,
        "SELECT type, points, merchant_id, purpose FROM transactions WHERE public_id = :t",
        t=body["transaction"],
    )
    assert (kind, points, merchant, purpose) == ("redeem", 300, None, "draw_entry")
    redeemers = _system(
        session,
        "SELECT DISTINCT a.kind FROM lot_consumptions c JOIN transfers t ON t.id = c.transfer_id"
        " JOIN transactions x ON x.id = t.transaction_id JOIN accounts a"
        " ON a.id = c.redeemer_account_id WHERE x.public_id = :t",
        t=body["transaction"],
    )
    assert redeemers == [("operator",)]
    history = client.get("/api/v1/me/transactions", headers=headers).json["data"]
    assert [(t["type"], t["points"]) for t in history][:1] == [("redeem", 300)]
    assert client.get(f"/api/v1/draws/{draw}").json["entries_count"] == 3


def test_too_few_points_is_refused_and_nothing_is_written(
    client: FlaskClient, session: Session
) -> None:
    shop = factories.merchant(session)
    member = factories.member(session)
    purchase_now(session, member, shop, 25_000)  # 250 points
    draw = open_draw(session, entry_points=100)
    headers = factories.member_headers(session, shop, member)

    refused = client.post(f"/api/v1/me/draws/{draw}/entries", json={"count": 3}, headers=headers)

    assert (refused.status_code, refused.json["code"]) == (422, "insufficient_points")
    assert _system(session, "SELECT count(*) FROM draw_entries") == [(0,)]
    assert _system(session, "SELECT count(*) FROM transactions WHERE type = 'redeem'") == [(0,)]
    bad = client.post(f"/api/v1/me/draws/{draw}/entries", json={"count": 0}, headers=headers)
    assert (bad.status_code, bad.json["code"]) == (422, "validation_error")
    scopeless = factories.member_headers(session, shop, member, scope="balance:read")
    denied = client.post(f"/api/v1/me/draws/{draw}/entries", json={}, headers=scopeless)
    assert (denied.status_code, denied.json["code"]) == (403, "insufficient_scope")


def test_entries_end_at_the_closing_time_before_the_job_runs(
    client: FlaskClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = factories.merchant(session)
    member = factories.member(session)
    purchase_now(session, member, shop, 100_000)
    draw = open_draw(session, entry_points=100, closes_in=timedelta(minutes=10))
    session.commit()
    later = clock.utcnow() + timedelta(minutes=11)

    monkeypatch.setattr(clock, "utcnow", lambda: later)
    with pytest.raises(services.DrawClosed):
        services.enter(
            session, draw_id=draw, member_id=member, entries=1, actor=Actor("member"), now=later
        )


@pytest.mark.both_backends
def test_paid_and_free_entries_make_one_list_that_recomputes(
    client: FlaskClient, session: Session
) -> None:
    books = factories.merchant(session, "Books")
    buyers = [factories.member(session) for _ in range(5)]
    draw = open_draw(
        session,
        entry_points=50,
        winners_count=3,
        partners=[factories_public_id(session, books)],
        now=clock.utcnow() - timedelta(minutes=1),
    )
    for number, member in enumerate(buyers):
        purchase_now(session, member, books, 30_000)  # a free entry, and 300 points
        if number % 2 == 0:
            services.enter(
                session,
                draw_id=draw,
                member_id=member,
                entries=number + 1,
                actor=Actor("member"),
                now=clock.utcnow(),
            )

    closed = services.close(session, draw, now=clock.utcnow(), actor=OPERATOR).as_dict()

    counts = sorted(e["entries"] for e in closed["entries"])
    assert counts == [1, 1, 2, 4, 6]  # free 1 each; paid 1, 3, 5 for the 1st, 3rd, 5th
    assert closed["entries_count"] == 14
    shown = client.get(f"/api/v1/draws/{draw}").json
    assert independent.recompute(shown) == shown["winners"]
    assert len(set(shown["winners"])) == 3


def test_an_entry_racing_the_close_is_in_the_list_or_refused(committed: Flask) -> None:
    with committed.app_context():
        session = db.session()
        shop = factories.merchant(session)
        members = [factories.member(session) for _ in range(8)]
        for member in members:
            purchase_now(session, member, shop, 10_000)
        draw = open_draw(session, entry_points=10)
        session.commit()
    now = clock.utcnow()

    def act(index: int, session: Session) -> object:
        if index == 0:
            return services.close(session, draw, now=now, actor=None)
        return services.enter(
            session,
            draw_id=draw,
            member_id=members[index - 1],
            entries=1,
            actor=Actor("member"),
            now=now,
        )

    parties = iter(range(9))
    lock = threading.Lock()

    def next_party(session: Session) -> object:
        with lock:
            index = next(parties)
        return act(index, session)

    outcomes = race(committed, 9, next_party)

    entered = [o for o in outcomes if isinstance(o, services.Entered)]
    refused = [o for o in outcomes if isinstance(o, services.DrawClosed)]
    assert len(entered) + len(refused) == 8
    with committed.app_context():
        session = db.session()
        listed = _system(
            session,
            "SELECT coalesce(sum(paid_entries), 0) FROM draw_entrants e JOIN draws d"
            " ON d.id = e.draw_id WHERE d.public_id = :d",
            d=draw,
        )
        paid = _system(session, "SELECT count(*) FROM draw_entries")
        db.session.remove()
    assert listed == [(len(entered),)] == paid
