"""Prize draws over the API (SPEC 3.3-3.5): the operator opens and closes, anyone reads a
draw, and a closed draw's public data lets an independent implementation recompute its
winners. Free entries come from purchases at the chosen partners while the draw is open."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from coalition import audit, clock, tenancy
from coalition.ledger import operations
from coalition.outbox import outbox_events
from draws import procedure, services, tasks
from tests import factories
from tests.draws import independent
from tests.draws.helpers import OPERATOR, open_draw, purchase_now
from webhooks.catalogue import COALITION_ONLY, SUBSCRIBABLE

ISO = "%Y-%m-%dT%H:%M:%SZ"


def _body(**changes: Any) -> dict[str, Any]:
    return {
        "prize": "A bicycle",
        "entry_points": 250,
        "closes_at": (clock.utcnow() + timedelta(days=3)).strftime(ISO),
        "winners_count": 2,
        **changes,
    }


def _count(session: Session, table: str) -> int:
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return int(session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_the_operator_opens_a_draw_whose_seed_hash_is_public_and_seed_secret(
    client: FlaskClient, session: Session
) -> None:
    shop = factories.merchant(session, "Books")
    headers = {**factories.operator_headers(session), "Idempotency-Key": "open-1"}
    body = _body(
        free_entries={
            "merchants": [factories_public_id(session, shop)],
            "min_amount": {"amount": 2000, "currency": "EUR"},
        }
    )

    opened = client.post("/api/v1/ops/draws", json=body, headers=headers)
    again = client.post("/api/v1/ops/draws", json=body, headers=headers)

    assert opened.status_code == 201, opened.json
    draw = opened.json
    assert again.json == draw and again.headers["Idempotent-Replayed"] == "true"
    assert draw["id"].startswith("drw_") and draw["status"] == "open"
    assert (draw["prize"], draw["entry_points"], draw["winners_count"]) == ("A bicycle", 250, 2)
    assert draw["free_entries"]["merchants"] == [
        {"id": factories_public_id(session, shop), "name": "Books"}
    ]
    assert re.fullmatch(r"[0-9a-f]{64}", draw["seed_hash"])
    assert draw["entries_count"] == 0
    assert not {"seed", "entries", "winners"} & set(draw)

    seen = client.get(f"/api/v1/draws/{draw['id']}")  # no token
    assert seen.status_code == 200
    assert seen.json == draw
    assert _count(session, "draws") == 1
    with tenancy.acting_as(tenancy.SYSTEM, session):  # the test reads as the system
        logged = audit.events(session, action="draw.opened").rows
    assert [e["target_id"] for e in logged] == [draw["id"]]
    assert "seed" not in logged[0]["after"]


def factories_public_id(session: Session, merchant_id: int) -> str:
    return str(
        session.execute(
            text("SELECT public_id FROM merchants WHERE id = :m"), {"m": merchant_id}
        ).scalar_one()
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"closes_at": "2020-01-01T00:00:00Z"}, "closes_at"),
        ({"winners_count": 0}, "winners_count"),
        ({"entry_points": None}, "entry_points"),
        ({"entry_points": -5}, "entry_points"),
        ({"prize": "  "}, "prize"),
        ({"seed": "00" * 32}, "seed"),
        (
            {
                "free_entries": {
                    "merchants": ["mer_nosuchshop"],
                    "min_amount": {"amount": 100, "currency": "EUR"},
                }
            },
            "free_entries",
        ),
        (
            {"free_entries": {"merchants": [], "min_amount": {"amount": 100, "currency": "EUR"}}},
            "free_entries",
        ),
    ],
)
def test_a_bad_draw_is_refused_and_nothing_is_written(
    client: FlaskClient, session: Session, changes: dict[str, Any], field: str
) -> None:
    refused = client.post(
        "/api/v1/ops/draws", json=_body(**changes), headers=factories.operator_headers(session)
    )

    assert refused.status_code == 422, refused.json
    assert refused.json["code"] == "validation_error"
    assert field in json.dumps(refused.json["errors"])
    assert _count(session, "draws") == 0


def test_free_entries_in_another_currency_are_refused(
    client: FlaskClient, session: Session
) -> None:
    shop = factories.merchant(session, "Books")
    body = _body(
        free_entries={
            "merchants": [factories_public_id(session, shop)],
            "min_amount": {"amount": 100, "currency": "USD"},
        }
    )
    refused = client.post(
        "/api/v1/ops/draws", json=body, headers=factories.operator_headers(session)
    )
    assert refused.status_code == 422 and "free_entries" in refused.json["errors"]
    assert _count(session, "draws") == 0


def test_only_the_operator_opens_and_closes_draws(client: FlaskClient, session: Session) -> None:
    shop = factories.merchant(session)
    member = factories.member(session)
    draw = open_draw(session)
    for headers in (
        factories.merchant_headers(session, shop),
        factories.member_headers(session, shop, member),
    ):
        assert client.post("/api/v1/ops/draws", json=_body(), headers=headers).status_code == 403
        closing = client.post(f"/api/v1/ops/draws/{draw}/close", headers=headers)
        assert closing.status_code == 403
    assert client.get(f"/api/v1/draws/{draw}").json["status"] == "open"


def _free_entry_draw(session: Session) -> tuple[str, dict[str, int]]:
    """A free-only draw at Books (one entry per purchase of 20 EUR or more) and four members'
    shopping while it is open."""
    books, cafe = factories.merchant(session, "Books"), factories.merchant(session, "Cafe")
    draw = open_draw(
        session,
        entry_points=None,
        winners_count=2,
        partners=[factories_public_id(session, books)],
        min_amount_minor=2000,
        now=clock.utcnow() - timedelta(hours=1),
    )
    ann, bob, cy, dee = (factories.member(session) for _ in range(4))
    purchase_now(session, ann, books, 2500)
    purchase_now(session, ann, books, 2000)
    purchase_now(session, bob, books, 5000)
    purchase_now(session, cy, books, 1999)  # too small
    purchase_now(session, cy, cafe, 9000)  # not a partner
    refunded = purchase_now(session, dee, books, 3000)
    operations.refund(
        session,
        purchase_id=refunded["transaction"]["id"],
        merchant_id=books,
        amount_minor=1500,  # 15 EUR left: below the draw's 20
        actor=factories.TILL,
        now=clock.utcnow(),
    )
    # Before the draw opened: does not count.
    purchase_now(session, dee, books, 4000, now=clock.utcnow() - timedelta(days=1))
    return draw, {"ann": ann, "bob": bob, "cy": cy, "dee": dee}


@pytest.mark.both_backends
def test_free_entries_are_purchases_at_partners_of_the_amount_while_open(
    client: FlaskClient, session: Session
) -> None:
    draw, members = _free_entry_draw(session)

    assert client.get(f"/api/v1/draws/{draw}").json["entries_count"] == 3
    closed = client.post(
        f"/api/v1/ops/draws/{draw}/close", headers=factories.operator_headers(session)
    )

    assert closed.status_code == 200, closed.json
    body = closed.json
    assert body["status"] == "closed" and body["entries_count"] == 3
    with tenancy.acting_as(tenancy.SYSTEM, session):
        entrants = dict(session.execute(text("SELECT member_id, entrant FROM draw_entrants")).all())
    entries = {e["entrant"]: e["entries"] for e in body["entries"]}
    assert {m: entries[e] for m, e in entrants.items()} == {members["ann"]: 2, members["bob"]: 1}
    assert len(body["winners"]) == 2 and set(body["winners"]) == {
        e["entrant"] for e in body["entries"]
    }


@pytest.mark.both_backends
def test_a_closed_draw_is_recomputed_from_its_public_data_alone(
    client: FlaskClient, session: Session
) -> None:
    draw, _ = _free_entry_draw(session)
    more = factories.merchant(session, "More")
    client.post(f"/api/v1/ops/draws/{draw}/close", headers=factories.operator_headers(session))

    shown = client.get(f"/api/v1/draws/{draw}").json
    listed = client.get(f"/draws/{draw}/entries.txt")

    assert hashlib.sha256(bytes.fromhex(shown["seed"])).hexdigest() == shown["seed_hash"]
    assert hashlib.sha256(listed.data).hexdigest() == shown["entries_hash"]
    assert independent.recompute(shown) == shown["winners"]
    # Tampering with what was published is caught, or draws other winners.
    swapped = dict(shown, entries=[dict(e, entries=e["entries"] + 1) for e in shown["entries"]])
    with pytest.raises(AssertionError):
        independent.recompute(swapped)
    assert more  # another merchant exists and changes nothing


def test_the_public_draw_carries_no_personal_data(client: FlaskClient, session: Session) -> None:
    draw, members = _free_entry_draw(session)
    client.post(f"/api/v1/ops/draws/{draw}/close", headers=factories.operator_headers(session))

    public = client.get(f"/api/v1/draws/{draw}").get_data(as_text=True)
    page = client.get(f"/draws/{draw}").get_data(as_text=True)
    with tenancy.acting_as(tenancy.SYSTEM, session):
        personal = session.execute(
            text("SELECT public_id, card_number, email FROM members WHERE id = ANY(:ids)"),
            {"ids": list(members.values())},
        ).all()
    for row in personal:
        for value in row:
            if value:
                assert value not in public and value not in page
    assert "mbr_" not in public and "@" not in public


def test_closing_twice_changes_nothing_and_tells_each_winner_once(
    client: FlaskClient, session: Session
) -> None:
    draw, members = _free_entry_draw(session)
    headers = factories.operator_headers(session)

    first = client.post(f"/api/v1/ops/draws/{draw}/close", headers=headers).json
    second = client.post(f"/api/v1/ops/draws/{draw}/close", headers=headers).json
    services.close(session, draw, now=clock.utcnow() + timedelta(days=30), actor=OPERATOR)

    assert second == first == client.get(f"/api/v1/draws/{draw}").json
    with tenancy.acting_as(tenancy.SYSTEM, session):
        told = session.execute(
            select(
                outbox_events.c.member_id, outbox_events.c.merchant_id, outbox_events.c.data
            ).where(outbox_events.c.type == "draw.closed")
        ).all()
    assert len(told) == 2
    assert {t.member_id for t in told} <= set(members.values())
    assert all(t.merchant_id is None for t in told)  # the coalition's: no merchant hears it
    assert "draw.closed" in COALITION_ONLY and "draw.closed" not in SUBSCRIBABLE
    assert all(t.data["draw"] == {k: v for k, v in first.items() if k != "entries"} for t in told)
    assert [t.data["entrant"] for t in sorted(told, key=lambda t: t.data["place"])] == first[
        "winners"
    ]
    with tenancy.acting_as(tenancy.SYSTEM, session):
        closings = audit.events(session, action="draw.closed").rows
    assert [e["target_id"] for e in closings] == [draw]


@pytest.mark.both_backends
def test_the_job_closes_draws_whose_time_has_come_and_a_rerun_does_nothing(
    client: FlaskClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = clock.utcnow()
    due = open_draw(session, closes_in=timedelta(hours=1), now=now)
    later = open_draw(session, closes_in=timedelta(days=2), now=now)
    session.commit()

    monkeypatch.setattr(clock, "utcnow", lambda: now + timedelta(hours=2))
    assert tasks.close_due_draws() == [due]
    assert tasks.close_due_draws() == []

    monkeypatch.undo()
    assert client.get(f"/api/v1/draws/{due}").json["status"] == "closed"
    assert client.get(f"/api/v1/draws/{later}").json["status"] == "open"
    # Nobody entered: no winners, an empty list, still verifiable.
    shown = client.get(f"/api/v1/draws/{due}").json
    assert (shown["entries"], shown["winners"], shown["entries_count"]) == ([], [], 0)
    assert shown["entries_hash"] == hashlib.sha256(b"").hexdigest()


def test_entering_a_closed_draw_or_a_free_only_one_is_refused(
    client: FlaskClient, session: Session
) -> None:
    shop = factories.merchant(session)
    member = factories.member(session)
    purchase_now(session, member, shop, 100_000)
    paid = open_draw(session, entry_points=10)
    free = open_draw(session, entry_points=None, partners=[factories_public_id(session, shop)])
    headers = factories.member_headers(session, shop, member)
    client.post(f"/api/v1/ops/draws/{paid}/close", headers=factories.operator_headers(session))
    before = _count(session, "transactions")

    closed = client.post(f"/api/v1/me/draws/{paid}/entries", json={"count": 1}, headers=headers)
    free_only = client.post(f"/api/v1/me/draws/{free}/entries", json={}, headers=headers)
    unknown = client.post("/api/v1/me/draws/drw_nosuchdraw/entries", json={}, headers=headers)

    assert (closed.status_code, closed.json["code"]) == (409, "draw_closed")
    assert (free_only.status_code, free_only.json["code"]) == (409, "no_paid_entries")
    assert (unknown.status_code, unknown.json["code"]) == (404, "not_found")
    assert _count(session, "transactions") == before
    assert _count(session, "draw_entries") == 0


def test_an_unknown_draw_is_not_found(client: FlaskClient, session: Session) -> None:
    for path in ("/api/v1/draws/drw_nosuchdraw", "/api/v1/draws/evt_x"):
        answer = client.get(path)
        assert (answer.status_code, answer.json["code"]) == (404, "not_found")
    assert client.get("/draws/drw_nosuchdraw").status_code == 404


def test_the_operator_lists_draws_newest_first(client: FlaskClient, session: Session) -> None:
    first, second = open_draw(session), open_draw(session)
    listed = client.get("/api/v1/ops/draws", headers=factories.operator_headers(session)).json
    assert [d["id"] for d in listed["data"]] == [second, first]
    assert all("entries" not in d for d in listed["data"])


def test_a_close_killed_midway_leaves_nothing_and_a_rerun_closes_the_draw(
    client: FlaskClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    draw, _ = _free_entry_draw(session)
    session.commit()
    later = clock.utcnow() + timedelta(days=8)
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    real_winners = procedure.winners

    def killed(*args: Any, **kwargs: Any) -> list[str]:
        raise RuntimeError("the worker was killed")

    monkeypatch.setattr(procedure, "winners", killed)
    with pytest.raises(RuntimeError):
        tasks.close_due_draws()
    session.rollback()

    assert _count(session, "draw_entrants") == 0
    assert _count(session, "outbox_events WHERE type = 'draw.closed'") == 0
    monkeypatch.setattr(procedure, "winners", real_winners)
    assert tasks.close_due_draws() == [draw]
    monkeypatch.undo()
    shown = client.get(f"/api/v1/draws/{draw}").json
    assert shown["status"] == "closed" and independent.recompute(shown) == shown["winners"]
