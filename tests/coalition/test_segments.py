"""Segments (SPEC 2, segments and targeted offers; issue 16 point 3): the SQL evaluation of a
definition holds exactly the members a plain Python filter over the same members picks, for a
merchant (its own customers and purchases) and for the operator (everyone, every partner);
only members whose latest profiling consent is granted are ever in one; the API keeps each
merchant's segments its own."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from coalition import clock
from coalition.audit import events_table
from coalition.database import table
from coalition.ledger import awards
from coalition.ledger.models import Account
from coalition.members import attributes
from coalition.members.models import Member
from coalition.privacy import services as privacy
from coalition.segments import definitions, services
from coalition.segments.models import segment_members, segments
from coalition.segments.services import Owner
from tests import factories as f

pytestmark = pytest.mark.both_backends
members = table(Member)
accounts = table(Account)
NOW = datetime(2027, 6, 15, 12, 0, tzinfo=UTC)
SHOPS = 2
STORES = ("Harbour", "Market")
INTERESTS = ("books", "sports", "travel")
REGIONS = ("north", "south", "centre")
TIERS = ("Member", "Silver", "Gold")
_receipts = itertools.count(1)


@dataclass
class Buy:
    shop: int
    minutes_ago: int
    points: int
    store: str

    @property
    def at(self) -> datetime:
        return NOW - timedelta(minutes=self.minutes_ago)


@dataclass
class Person:
    consent: bool | None
    tier: str
    birth_date: date | None
    household_size: int | None
    interests: list[str]
    region: str | None
    buys: list[Buy] = field(default_factory=list)


buys = st.builds(
    Buy,
    shop=st.integers(0, SHOPS - 1),
    minutes_ago=st.integers(1, 200 * 24 * 60),
    points=st.integers(1, 40),
    store=st.sampled_from(STORES),
)
people = st.builds(
    Person,
    consent=st.sampled_from([None, True, True, False]),
    tier=st.sampled_from(TIERS),
    birth_date=st.none() | st.dates(date(1940, 1, 1), date(2015, 12, 31)),
    household_size=st.none() | st.integers(1, 6),
    interests=st.lists(st.sampled_from(INTERESTS), max_size=3, unique=True),
    region=st.none() | st.sampled_from(REGIONS),
    buys=st.lists(buys, max_size=5),
)


@st.composite
def ranges(draw: Any, low: int, high: int) -> dict[str, int]:
    a, b = sorted(draw(st.lists(st.integers(low, high), min_size=2, max_size=2)))
    return draw(st.sampled_from([{"min": a}, {"max": b}, {"min": a, "max": b}]))


days = st.integers(1, 200)
criteria = {
    "recency_days": days,
    "lapsed_days": days,
    "frequency": st.builds(lambda d, r: {"days": d, **r}, days, ranges(0, 4)),
    "spend": st.builds(
        lambda d, unit, r: {"days": d, "unit": unit, **r},
        days,
        st.sampled_from(["money", "points"]),
        ranges(0, 100),
    ).map(lambda s: s if s["unit"] == "points" else {**s, **_hundredfold(s)}),
    "tiers": st.lists(st.sampled_from(TIERS), min_size=1, unique=True),
    "stores": st.lists(st.sampled_from(STORES), min_size=1, unique=True),
    "partners": st.builds(
        lambda ids, match: {"ids": ids, "match": match},
        st.lists(st.integers(0, SHOPS - 1), min_size=1, unique=True),
        st.sampled_from(["any", "all"]),
    ),
    "age": ranges(0, 90),
    "household_size": ranges(1, 6),
    "interests": st.lists(st.sampled_from(INTERESTS), min_size=1, unique=True),
    "regions": st.lists(st.sampled_from(REGIONS), min_size=1, unique=True),
}


def _hundredfold(spend: dict[str, Any]) -> dict[str, int]:
    return {key: spend[key] * 100 for key in ("min", "max") if key in spend}


@st.composite
def definition_of(draw: Any) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(sorted(criteria)), max_size=4, unique=True))
    return {name: draw(criteria[name]) for name in chosen}


def _age(born: date, today: date) -> int:
    years = today.year - born.year
    if (today.month, today.day) < (born.month, born.day):
        years -= 1
    return years


def _in_range(value: int, bounds: dict[str, int]) -> bool:
    return bounds.get("min", value) <= value <= bounds.get("max", value)


def expected(person: Person, d: dict[str, Any], shop: int | None, today: date) -> bool:
    """The plain Python filter: what a segment of `shop` (None: the operator's) holds."""
    if person.consent is not True:
        return False
    mine = [b for b in person.buys if shop is None or b.shop == shop]
    if shop is not None and not mine:
        return False

    def within(n: int) -> list[Buy]:
        return [b for b in mine if NOW - b.at <= timedelta(days=n)]

    last = max((b.at for b in mine), default=None)
    checks = []
    if "recency_days" in d:
        checks.append(last is not None and NOW - last <= timedelta(days=d["recency_days"]))
    if "lapsed_days" in d:
        checks.append(last is not None and NOW - last > timedelta(days=d["lapsed_days"]))
    if "frequency" in d:
        checks.append(_in_range(len(within(d["frequency"]["days"])), d["frequency"]))
    if "spend" in d:
        spend = d["spend"]
        per = 100 if spend["unit"] == "money" else 1
        checks.append(_in_range(sum(b.points * per for b in within(spend["days"])), spend))
    if "tiers" in d:
        checks.append(person.tier in d["tiers"])
    if "stores" in d and shop is not None:
        checks.append(any(b.store in d["stores"] for b in mine))
    if "partners" in d:
        visited = {b.shop for b in person.buys}
        wanted = set(d["partners"]["ids"])
        checks.append(
            wanted <= visited if d["partners"]["match"] == "all" else bool(wanted & visited)
        )
    if "age" in d:
        born = person.birth_date
        checks.append(born is not None and _in_range(_age(born, today), d["age"]))
    if "household_size" in d:
        size = person.household_size
        checks.append(size is not None and _in_range(size, d["household_size"]))
    if "interests" in d:
        checks.append(bool(set(person.interests) & set(d["interests"])))
    if "regions" in d:
        checks.append(person.region in d["regions"])
    return all(checks)


def _buy(session: Session, member_id: int, shop_id: int, buy: Buy) -> None:
    account_id = session.execute(
        select(accounts.c.id).where(accounts.c.member_id == member_id)
    ).scalar_one()
    awards.award_many(
        session,
        merchant_id=shop_id,
        awards=[
            awards.Award(
                account_id=account_id,
                parts={"merchant": buy.points},
                expires_at=buy.at + f.LIFETIME,
                amount_minor=buy.points * 100,
                currency="EUR",
                external_id=f"seg-{next(_receipts)}",
                store=buy.store,
            )
        ],
        actor=f.TILL,
        now=buy.at,
    )


def _populate(session: Session, crowd: list[Person]) -> tuple[list[int], list[int]]:
    shops = [f.merchant(session, f"Shop {i}") for i in range(SHOPS)]
    ids = []
    for person in crowd:
        member_id = f.member(session)
        ids.append(member_id)
        for buy in sorted(person.buys, key=lambda b: -b.minutes_ago):
            _buy(session, member_id, shops[buy.shop], buy)
        session.execute(update(members).where(members.c.id == member_id).values(tier=person.tier))
        if person.consent is not None:
            privacy.set_consents(
                session, member_id, {"profiling": True}, source=privacy.ME, now=NOW
            )
            if person.consent is False:
                privacy.set_consents(
                    session, member_id, {"profiling": False}, source=privacy.ME, now=NOW
                )
        attributes.set_attributes(
            session,
            member_id,
            {
                "birth_date": person.birth_date,
                "household_size": person.household_size,
                "interests": person.interests or None,
                "region": person.region,
            },
            now=NOW,
            today=NOW.date(),
        )
    return shops, ids


def _stored(
    session: Session, raw: dict[str, Any], shops: list[int], operator: bool
) -> dict[str, Any] | None:
    """The definition as the API would store it for this owner (None: the owner may not use
    one of its criteria)."""
    raw = dict(raw)
    if "partners" in raw:
        if not operator:
            return None
        public = {
            row.id: row.public_id
            for row in session.execute(
                select(services.merchants.c.id, services.merchants.c.public_id)
            )
        }
        ids = [public[shops[i]] for i in raw["partners"]["ids"]]
        raw["partners"] = {**raw["partners"], "ids": ids}
    if "stores" in raw and operator:
        return None
    loaded = definitions.DefinitionIn().load(raw)
    return services.prepare(session, Owner(None if operator else shops[0]), loaded, NOW)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(crowd=st.lists(people, min_size=1, max_size=6), raw=definition_of())
def test_the_sql_evaluation_is_the_plain_filter_for_a_merchant_and_for_the_operator(
    app: Flask, session: Session, crowd: list[Person], raw: dict[str, Any]
) -> None:
    savepoint = session.begin_nested()
    try:
        shops, ids = _populate(session, crowd)
        today = clock.business_date(NOW, app.config["COALITION_TIMEZONE"])
        for shop in (0, 1, None):
            owner = Owner(None if shop is None else shops[shop])
            stored = _stored(session, raw, shops, operator=shop is None)
            if stored is None:
                continue
            found = set(session.execute(services.query(session, owner, stored, NOW)).scalars())
            wanted = {
                member_id
                for member_id, person in zip(ids, crowd, strict=True)
                if expected(person, raw, shop, today)
            }
            assert found == wanted, (shop, stored)
            assert services.count(session, owner, stored, NOW) == len(wanted)
    finally:
        savepoint.rollback()


# Evaluation, consent and erasure ------------------------------------------------------------


def _shopper(session: Session, shop: int, *, consent: bool = True, points: int = 10) -> int:
    member_id = f.member(session)
    f.purchase(session, member_id, shop, points, now=NOW - timedelta(days=3))
    if consent:
        privacy.set_consents(session, member_id, {"profiling": True}, source=privacy.ME, now=NOW)
    return member_id


def _held(session: Session, public_id: str) -> set[int]:
    segment_id = session.execute(
        select(segments.c.id).where(segments.c.public_id == public_id)
    ).scalar_one()
    return set(
        session.execute(
            select(segment_members.c.member_id).where(segment_members.c.segment_id == segment_id)
        ).scalars()
    )


def test_a_segment_holds_its_consenting_customers_and_forgets_a_withdrawal(
    session: Session,
) -> None:
    shop, other = f.merchant(session), f.merchant(session, "Other")
    consenting = _shopper(session, shop)
    silent = _shopper(session, shop, consent=False)
    elsewhere = _shopper(session, other)

    public_id = services.create(
        session, Owner(shop), name="Recent", definition={"recency_days": 30}, now=NOW
    )

    assert _held(session, public_id) == {consenting}
    assert silent not in _held(session, public_id)
    assert elsewhere not in _held(session, public_id)
    privacy.set_consents(session, consenting, {"profiling": False}, source=privacy.ME, now=NOW)
    assert _held(session, public_id) == set()
    count = session.execute(
        select(segments.c.member_count).where(segments.c.public_id == public_id)
    ).scalar_one()
    assert count == 0


def test_the_nightly_evaluation_moves_with_time_and_is_idempotent(session: Session) -> None:
    shop = f.merchant(session)
    member_id = _shopper(session, shop)
    public_id = services.create(
        session, Owner(shop), name="Lapsed", definition={"lapsed_days": 30}, now=NOW
    )
    assert _held(session, public_id) == set()

    later = NOW + timedelta(days=40)
    assert services.evaluate_all(session, later) == 1
    assert services.evaluate_all(session, later) == 1

    assert _held(session, public_id) == {member_id}
    row = session.execute(
        select(segments.c.member_count, segments.c.evaluated_at).where(
            segments.c.public_id == public_id
        )
    ).one()
    assert (row.member_count, row.evaluated_at) == (1, later)


def test_erasure_removes_the_attributes_and_every_segment_membership(session: Session) -> None:
    shop = f.merchant(session)
    member_id = _shopper(session, shop)
    attributes.set_attributes(session, member_id, {"region": "north"}, now=NOW, today=NOW.date())
    public_id = services.create(
        session, Owner(None), name="North", definition={"regions": ["north"]}, now=NOW
    )
    assert _held(session, public_id) == {member_id}

    privacy.erase(session, member_id, source=privacy.ME, now=NOW)

    assert _held(session, public_id) == set()
    assert attributes.attributes_of(session, member_id) == dict.fromkeys(attributes.FIELDS)


# The API -------------------------------------------------------------------------------------


def test_a_merchant_saves_counts_changes_and_deletes_its_segment(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session)
    big = _shopper(session, shop, points=60)
    _shopper(session, shop, points=5)
    headers = f.merchant_headers(session, shop)
    body = {
        "name": "Big spenders",
        "definition": {"spend": {"days": 30, "unit": "money", "min": 5000}},
    }

    counted = client.post(
        "/api/v1/segment-counts", json={"definition": body["definition"]}, headers=headers
    )
    created = client.post("/api/v1/segments", json=body, headers=headers)
    held = _held(session, created.json["id"])
    listed = client.get("/api/v1/segments", headers=headers)
    changed = client.put(
        f"/api/v1/segments/{created.json['id']}",
        json={"name": "Everyone", "definition": {}},
        headers=headers,
    )
    deleted = client.delete(f"/api/v1/segments/{created.json['id']}", headers=headers)
    gone = client.get(f"/api/v1/segments/{created.json['id']}", headers=headers)

    assert counted.status_code == 200, counted.json
    assert counted.json == {
        "member_count": 1,
        "definition": {"spend": {"days": 30, "unit": "money", "min": 5000, "currency": "EUR"}},
    }
    assert created.status_code == 201, created.json
    assert created.json["id"].startswith("seg_")
    assert created.json["member_count"] == 1
    assert held == {big}
    assert [s["name"] for s in listed.json["data"]] == ["Big spenders"]
    assert changed.status_code == 200
    assert (changed.json["name"], changed.json["member_count"]) == ("Everyone", 2)
    assert deleted.status_code == 204
    assert gone.status_code == 404


def test_merchant_b_can_neither_read_nor_change_nor_count_with_merchant_as_segment(
    client: FlaskClient, session: Session
) -> None:
    a, b = f.merchant(session, "A"), f.merchant(session, "B")
    _shopper(session, a)
    created = client.post(
        "/api/v1/segments",
        json={"name": "A's", "definition": {}},
        headers=f.merchant_headers(session, a),
    )
    segment_id = created.json["id"]
    theirs = f.merchant_headers(session, b)

    read = client.get(f"/api/v1/segments/{segment_id}", headers=theirs)
    changed = client.put(
        f"/api/v1/segments/{segment_id}", json={"name": "mine", "definition": {}}, headers=theirs
    )
    deleted = client.delete(f"/api/v1/segments/{segment_id}", headers=theirs)
    listed = client.get("/api/v1/segments", headers=theirs)
    counted = client.post("/api/v1/segment-counts", json={"definition": {}}, headers=theirs)

    assert (read.status_code, changed.status_code, deleted.status_code) == (404, 404, 404)
    assert listed.json["data"] == []
    # B's own count ranges over B's customers: A's shopper never bought at B.
    assert counted.json["member_count"] == 0
    assert (
        client.get(f"/api/v1/segments/{segment_id}", headers=f.merchant_headers(session, a)).json[
            "name"
        ]
        == "A's"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x"},
        {"name": "", "definition": {}},
        {"name": "x", "definition": {"recency_days": 0}},
        {"name": "x", "definition": {"frequency": {"days": 30}}},
        {"name": "x", "definition": {"frequency": {"days": 30, "min": 5, "max": 2}}},
        {"name": "x", "definition": {"spend": {"days": 30, "unit": "euros", "min": 1}}},
        {"name": "x", "definition": {"spend": {"days": 30, "unit": "money", "min": 1.5}}},
        {
            "name": "x",
            "definition": {"spend": {"days": 3, "unit": "money", "min": 1, "currency": "USD"}},
        },
        {"name": "x", "definition": {"interests": ["knitting"]}},
        {"name": "x", "definition": {"regions": []}},
        {"name": "x", "definition": {"partners": {"ids": ["mer_x"]}}},
        {"name": "x", "definition": {"age": {"min": 40, "max": 20}}},
        {"name": "x", "definition": {"colour": "blue"}},
    ],
)
def test_a_bad_definition_is_a_problem_and_saves_nothing(
    client: FlaskClient, session: Session, body: dict[str, Any]
) -> None:
    shop = f.merchant(session)
    headers = f.merchant_headers(session, shop)

    response = client.post("/api/v1/segments", json=body, headers=headers)
    counted = client.post(
        "/api/v1/segment-counts", json={"definition": body.get("definition")}, headers=headers
    )

    assert response.status_code == 422, response.json
    assert response.json["code"] == "validation_error"
    assert response.headers["Content-Type"] == "application/problem+json"
    if body.get("name"):  # the name alone is wrong in the other: its definition counts
        assert counted.status_code == 422
    assert session.execute(select(segments.c.id)).all() == []


def test_the_operator_segment_is_audited_and_refuses_stores(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session)
    _shopper(session, shop)
    headers = f.operator_headers(session)
    public = session.execute(
        select(services.merchants.c.public_id).where(services.merchants.c.id == shop)
    ).scalar_one()

    refused = client.post(
        "/api/v1/ops/segments",
        json={"name": "x", "definition": {"stores": ["Harbour"]}},
        headers=headers,
    )
    created = client.post(
        "/api/v1/ops/segments",
        json={"name": "Shop's", "definition": {"partners": {"ids": [public], "match": "all"}}},
        headers=headers,
    )

    assert refused.status_code == 422
    assert created.status_code == 201, created.json
    assert created.json["member_count"] == 1
    actions = session.execute(select(events_table.c.action, events_table.c.target_id)).all()
    assert ("segment.created", created.json["id"]) in actions


# The member's own attributes -----------------------------------------------------------------


def test_put_me_round_trips_clears_with_null_and_refuses_bad_input(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session)
    member_id = f.member(session)
    headers = f.member_headers(session, shop, member_id, "balance:read profile:write")

    set_ = client.put(
        "/api/v1/me",
        json={
            "birth_date": "1990-05-17",
            "household_size": 3,
            "interests": ["travel", "books", "travel"],
            "region": "north",
        },
        headers=headers,
    )
    cleared = client.put("/api/v1/me", json={"region": None}, headers=headers)
    bad = [
        client.put("/api/v1/me", json=body, headers=headers)
        for body in (
            {"household_size": 21},
            {"interests": ["knitting"]},
            {"region": "Atlantis"},
            {"birth_date": "2999-01-01"},
            {"tier": "Gold"},
        )
    ]
    read = client.get("/api/v1/me", headers=headers)
    export = client.get("/api/v1/me/export", headers=headers)

    assert set_.status_code == 200, set_.json
    assert set_.json["attributes"] == {
        "birth_date": "1990-05-17",
        "household_size": 3,
        "interests": ["books", "travel"],
        "region": "north",
    }
    assert cleared.json["attributes"]["region"] is None
    assert cleared.json["attributes"]["household_size"] == 3
    assert [(r.status_code, r.json["code"]) for r in bad] == [(422, "validation_error")] * 5
    assert read.json["attributes"] == {
        "birth_date": "1990-05-17",
        "household_size": 3,
        "interests": ["books", "travel"],
        "region": None,
    }
    assert export.json["attributes"] == read.json["attributes"]


def test_put_me_needs_the_profile_scope(client: FlaskClient, session: Session) -> None:
    shop = f.merchant(session)
    member_id = f.member(session)

    response = client.put(
        "/api/v1/me", json={"region": "north"}, headers=f.member_headers(session, shop, member_id)
    )

    assert response.status_code == 403
    assert attributes.attributes_of(session, member_id)["region"] is None


def test_a_create_retried_with_its_idempotency_key_saves_one_segment(
    client: FlaskClient, session: Session
) -> None:
    shop = f.merchant(session)
    headers = {**f.merchant_headers(session, shop), "Idempotency-Key": "seg-1"}
    body = {"name": "Recent", "definition": {"recency_days": 30}}

    first = client.post("/api/v1/segments", json=body, headers=headers)
    again = client.post("/api/v1/segments", json=body, headers=headers)
    other = client.post("/api/v1/segments", json={**body, "name": "Other"}, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (other.status_code, other.json["code"]) == (409, "idempotency_conflict")
    assert len(session.execute(select(segments.c.id)).all()) == 1
