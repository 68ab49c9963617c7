"""The coalition's economics as the operator sets them (SPEC 2, SPEC 3.5): versions of the terms
by business day, only for days that have not begun, per-merchant overrides of the issuer-side
settings, and the purchases and redemptions that trade under the terms of their day."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from coalition import clock, economics, tenancy
from coalition.errors import InvalidRequest
from coalition.ledger import reads
from coalition.ledger.models import Lot
from coalition.ledger.rows import Actor
from coalition.members.models import Member
from coalition.members.services import member_by_id
from coalition.oauth.models import OAuthClient
from merchants import purchases
from merchants.models import Merchant
from merchants.schemas import PurchaseSchema
from merchants.services import create_merchant
from settlement import runs
from settlement.models import SettlementPosition
from tests import factories as f

ECONOMICS = "/api/v1/ops/economics"
PURCHASES = "/api/v1/purchases"
SEEDED = economics.DEFAULT_TERMS.to_json()


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The API's clock, stopped."""
    moment = datetime.now(UTC).replace(microsecond=0)
    monkeypatch.setattr(clock, "utcnow", lambda: moment)
    return moment


@pytest.fixture
def today(app: Flask, now: datetime) -> date:
    return clock.business_date(now, app.config["COALITION_TIMEZONE"])


@pytest.fixture
def operator(session) -> dict[str, str]:
    return f.operator_headers(session)


def whole(**changes: Any) -> dict[str, Any]:
    """The seeded terms with some settings changed: a whole version of the coalition's."""
    return {**copy.deepcopy(SEEDED), **changes}


def version(day: date, terms: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"effective_from": day.isoformat(), "terms": terms, **extra}


def public_id(session, merchant_id: int) -> str:
    return session.execute(
        select(Merchant.public_id).where(Merchant.id == merchant_id)
    ).scalar_one()


def card_of(session, member_id: int) -> str:
    return session.execute(select(Member.card_number).where(Member.id == member_id)).scalar_one()


def versions_written(session) -> int:
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return session.execute(
            select(func.count()).select_from(economics.EconomicsVersion)
        ).scalar_one()


def operator_client(session) -> str:
    """The client id of the operator's token the test made (its only operator client)."""
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return session.execute(
            select(OAuthClient.client_id).where(OAuthClient.merchant_id.is_(None))
        ).scalar_one()


def refused(response, field: str) -> dict[str, Any]:
    """A 422 `validation_error` naming `field` ("terms.tiers": nested)."""
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["code"] == "validation_error", body
    errors = body["errors"]
    for name in field.split("."):
        assert name in errors, (field, body["errors"])
        errors = errors[name]
    return body


# Reading the terms.


def test_the_operator_sees_the_seeded_terms(client, operator, today):
    response = client.get(ECONOMICS, headers=operator)

    assert response.status_code == 200
    body = response.get_json()
    assert body["current"] == SEEDED
    assert body["current"]["point_value"] == "0.01"
    assert body["current"]["earn_rate_bounds"] == ["0.5", "10"]
    assert body["effective_from"] == "2000-01-01"
    assert [v["effective_from"] for v in body["versions"]] == ["2000-01-01"]
    assert body["versions"][0]["terms"] == SEEDED
    assert body["versions"][0]["actor"] == "migration"
    assert body["overrides"] == []


# Changing them.


def test_a_version_for_a_later_day_applies_from_that_day_on(client, session, operator, today):
    day = today + timedelta(days=2)
    new = whole(welcome_bonus=250, point_value="0.02", expiry_months=12)

    response = client.put(ECONOMICS, json=version(day, new), headers=operator)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["version"]["effective_from"] == day.isoformat()
    assert body["version"]["terms"] == new
    assert body["version"]["actor"] == operator_client(session)
    assert [v["effective_from"] for v in body["versions"]] == ["2000-01-01", day.isoformat()]

    def on(when: date | None) -> dict[str, Any]:
        query = {} if when is None else {"date": when.isoformat()}
        answer = client.get(ECONOMICS, query_string=query, headers=operator)
        assert answer.status_code == 200
        return answer.get_json()

    assert on(None)["current"] == SEEDED
    assert on(day - timedelta(days=1))["current"] == SEEDED
    assert on(day)["current"] == new
    assert on(day)["effective_from"] == day.isoformat()
    assert on(day + timedelta(days=400))["current"] == new
    assert [v["effective_from"] for v in on(None)["versions"]] == ["2000-01-01", day.isoformat()]


def test_a_second_version_for_the_same_day_replaces_the_first(client, session, operator, today):
    day = today + timedelta(days=1)
    client.put(ECONOMICS, json=version(day, whole(welcome_bonus=200)), headers=operator)
    written = versions_written(session)

    response = client.put(ECONOMICS, json=version(day, whole(welcome_bonus=300)), headers=operator)

    assert response.status_code == 200
    assert versions_written(session) == written
    assert [v["terms"]["welcome_bonus"] for v in response.get_json()["versions"]] == [100, 300]


@pytest.mark.parametrize("days", [0, -1, -400])
def test_the_terms_of_a_day_that_has_begun_are_fixed(client, session, operator, today, days):
    written = versions_written(session)

    response = client.put(
        ECONOMICS,
        json=version(today + timedelta(days=days), whole(welcome_bonus=500)),
        headers=operator,
    )

    body = refused(response, "effective_from")
    assert today.isoformat() in body["detail"]
    assert versions_written(session) == written
    assert client.get(ECONOMICS, headers=operator).get_json()["current"] == SEEDED


TIERS = SEEDED["tiers"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"currency": "XTS"}, "currency"),
        ({"currency": "eur"}, "currency"),
        ({"point_value": "0"}, "point_value"),
        ({"point_value": 0.01}, "point_value"),
        ({"point_value": "1e-2"}, "point_value"),
        ({"point_value": "NaN"}, "point_value"),
        ({"issue_price": "-0.01"}, "issue_price"),
        ({"issue_price": "0.0"}, "issue_price"),
        ({"operator_fee_rate": "1"}, "operator_fee_rate"),
        ({"operator_fee_rate": "1.5"}, "operator_fee_rate"),
        ({"funding_model": "barter"}, "funding_model"),
        ({"expiry_months": 0}, "expiry_months"),
        ({"expiry_months": 121}, "expiry_months"),
        ({"expiry_months": "24"}, "expiry_months"),
        ({"expiry_months": True}, "expiry_months"),
        ({"earn_rate_bounds": ["0", "10"]}, "earn_rate_bounds"),
        ({"earn_rate_bounds": ["5", "1"]}, "earn_rate_bounds"),
        ({"earn_rate_bounds": ["1"]}, "earn_rate_bounds"),
        ({"earn_rate_bounds": ["1", "2", "3"]}, "earn_rate_bounds"),
        ({"earn_rate_bounds": [1, 10]}, "earn_rate_bounds"),
        ({"welcome_bonus": -1}, "welcome_bonus"),
        ({"welcome_bonus": 1_000_001}, "welcome_bonus"),
        ({"tiers": []}, "tiers"),
        (
            {
                "tiers": [
                    {"name": f"T{n}", "qualifying_spend": str(n * 100), "multiplier": "1"}
                    for n in range(11)
                ]
            },
            "tiers",
        ),
        ({"tiers": [TIERS[0], {**TIERS[1], "name": "Member"}]}, "tiers"),
        ({"tiers": [{**TIERS[0], "qualifying_spend": "10"}, TIERS[1]]}, "tiers"),
        ({"tiers": [TIERS[0], TIERS[2], TIERS[1]]}, "tiers"),
        ({"tiers": [TIERS[0], {**TIERS[1], "qualifying_spend": "0"}]}, "tiers"),
        ({"tiers": [TIERS[0], {**TIERS[1], "multiplier": "0.5"}]}, "tiers"),
        ({"tiers": [TIERS[0], {**TIERS[1], "name": ""}]}, "tiers"),
        ({"tiers": [{**TIERS[0], "colour": "gold"}]}, "tiers"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_each_setting_is_validated_and_a_bad_one_writes_nothing(
    client, session, operator, today, changes, field
):
    written = versions_written(session)

    response = client.put(
        ECONOMICS, json=version(today + timedelta(days=1), whole(**changes)), headers=operator
    )

    refused(response, f"terms.{field}")
    assert versions_written(session) == written


def test_a_version_of_the_coalitions_terms_sets_every_setting(client, session, operator, today):
    partial = whole()
    del partial["tiers"]

    response = client.put(
        ECONOMICS, json=version(today + timedelta(days=1), partial), headers=operator
    )

    refused(response, "terms.tiers")


@pytest.mark.parametrize(
    "body",
    [
        {"terms": SEEDED},
        {"effective_from": "tomorrow", "terms": SEEDED},
        {"effective_from": "2099-01-01", "terms": SEEDED, "colour": "red"},
        {"effective_from": "2099-01-01"},
    ],
)
def test_a_body_without_a_day_or_terms_or_with_more_is_refused(client, operator, body):
    response = client.put(ECONOMICS, json=body, headers=operator)

    assert response.status_code == 422
    assert response.get_json()["code"] == "validation_error"


def test_the_currency_may_change_only_before_anything_is_traded(client, session, operator, today):
    day = today + timedelta(days=1)
    member, shop = f.member(session), f.merchant(session)
    f.purchase(session, member, shop, 10)

    response = client.put(ECONOMICS, json=version(day, whole(currency="GBP")), headers=operator)

    body = refused(response, "terms.currency")
    assert "one settlement currency per coalition" in body["detail"]
    # The same currency as today's is no change, so it passes.
    euros = client.put(ECONOMICS, json=version(day, whole()), headers=operator)
    assert euros.status_code == 200


def test_before_any_trade_the_currency_is_chosen_for_every_day(client, session, operator, today):
    """A currency set only from tomorrow would let today's first trades happen in another one,
    and change after them, which a coalition that has traded may not do (SPEC 2, v1)."""
    response = client.put(
        ECONOMICS, json=version(today + timedelta(days=1), whole(currency="USD")), headers=operator
    )

    assert response.status_code == 200, response.get_json()
    assert {v["terms"]["currency"] for v in response.get_json()["versions"]} == {"USD"}
    assert client.get(ECONOMICS, headers=operator).get_json()["current"]["currency"] == "USD"
    f.purchase(session, f.member(session), f.merchant(session), 10)
    back = client.put(ECONOMICS, json=version(today + timedelta(days=2), whole()), headers=operator)
    refused(back, "terms.currency")


SWITCHES = [("prefunded", "on_redemption"), ("on_redemption", "prefunded")]


@pytest.mark.parametrize(("model", "other"), SWITCHES)
def test_once_anything_is_traded_the_funding_model_cannot_switch(
    client, session, operator, today, model, other
):
    """Points issued under one model and spent under the other would be charged twice
    (prefunded, then on redemption) or reimbursed without anyone having paid for them."""
    _in_force_since_yesterday(session, today, whole(funding_model=model))
    member, shop = f.member(session), f.merchant(session)
    f.purchase(session, member, shop, 10)
    written = versions_written(session)

    answers = [
        client.put(ECONOMICS, json=version(when, whole(funding_model=other)), headers=operator)
        for when in (today + timedelta(days=1), today + timedelta(days=90))
    ]

    for response in answers:
        body = refused(response, "terms.funding_model")
        assert f"traded under {model}" in body["detail"]
        assert body["errors"]["terms"]["funding_model"] == [f"must be {model}"]
    assert versions_written(session) == written
    shown = client.get(ECONOMICS, headers=operator).get_json()
    assert {v["terms"]["funding_model"] for v in shown["versions"]} == {"prefunded", model}
    kept = version(today + timedelta(days=1), whole(funding_model=model, welcome_bonus=50))
    assert client.put(ECONOMICS, json=kept, headers=operator).status_code == 200


@pytest.mark.parametrize(("model", "other"), SWITCHES)
def test_before_any_trade_the_funding_model_is_chosen_for_every_day(
    client, session, operator, today, model, other
):
    """A coalition chooses its model before it trades. A model set only from tomorrow would let
    today's first trades happen under the other one, and switch after them."""
    _in_force_since_yesterday(session, today, whole(funding_model=model))

    response = client.put(
        ECONOMICS,
        json=version(today + timedelta(days=1), whole(funding_model=other)),
        headers=operator,
    )

    assert response.status_code == 200, response.get_json()
    assert {v["terms"]["funding_model"] for v in response.get_json()["versions"]} == {other}
    shown = client.get(ECONOMICS, headers=operator).get_json()
    assert shown["current"]["funding_model"] == other  # today's terms too
    assert shown["current"] == whole(funding_model=other)
    f.purchase(session, f.member(session), f.merchant(session), 10)
    again = client.put(
        ECONOMICS,
        json=version(today + timedelta(days=2), whole(funding_model=model)),
        headers=operator,
    )
    refused(again, "terms.funding_model")


# Per-merchant overrides.


def test_a_merchant_override_changes_only_that_merchants_issuer_side_terms(
    client, session, operator, today
):
    bakery, florist = f.merchant(session, "Bakery"), f.merchant(session, "Florist")
    day = today + timedelta(days=1)
    own = {"issue_price": "0.02", "expiry_months": 12, "earn_rate_bounds": ["0.5", "4"]}

    response = client.put(
        ECONOMICS, json=version(day, own, merchant=public_id(session, bakery)), headers=operator
    )

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["version"]["merchant"] == public_id(session, bakery)

    def terms_of(merchant: int, when: date) -> dict[str, Any]:
        answer = client.get(
            ECONOMICS,
            query_string={"merchant": public_id(session, merchant), "date": when.isoformat()},
            headers=operator,
        )
        assert answer.status_code == 200
        return answer.get_json()

    bakery_then = terms_of(bakery, day)
    assert bakery_then["current"] == {**SEEDED, **own}
    assert bakery_then["effective_from"] == day.isoformat()
    assert bakery_then["overrides"][0]["merchant"] == public_id(session, bakery)
    assert terms_of(bakery, today)["current"] == SEEDED
    assert terms_of(florist, day)["current"] == SEEDED
    assert terms_of(florist, day)["overrides"] == []
    coalition = client.get(ECONOMICS, query_string={"date": day.isoformat()}, headers=operator)
    assert coalition.get_json()["current"] == SEEDED
    assert [o["merchant"] for o in coalition.get_json()["overrides"]] == [
        public_id(session, bakery)
    ]


def merchant_terms_on(client, operator, mer: str, when: date) -> dict[str, Any]:
    query = {"merchant": mer, "date": when.isoformat()}
    answer = client.get(ECONOMICS, query_string=query, headers=operator)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["current"]


def test_a_later_override_of_one_setting_keeps_the_merchants_earlier_ones(
    client, session, operator, today
):
    mer = public_id(session, f.merchant(session))
    day = today + timedelta(days=1)
    priced = client.put(
        ECONOMICS, json=version(day, {"issue_price": "0.02"}, merchant=mer), headers=operator
    )
    expiring = client.put(
        ECONOMICS,
        json=version(day + timedelta(days=7), {"expiry_months": 12}, merchant=mer),
        headers=operator,
    )

    assert priced.status_code == expiring.status_code == 200
    assert merchant_terms_on(client, operator, mer, day) == {**SEEDED, "issue_price": "0.02"}
    assert merchant_terms_on(client, operator, mer, day + timedelta(days=7)) == {
        **SEEDED,
        "issue_price": "0.02",
        "expiry_months": 12,
    }


def test_settlement_prices_a_day_with_every_override_in_force_that_day(session):
    """The bakery's own issue price from 1 March, its own expiry from 2 March: issuing 80 points
    on 2 March costs it 80 x 0.02, not the coalition's 80 x 0.0125."""
    bakery, alice = f.merchant(session, "Bakery"), f.member(session)
    for day, settings in (
        (date(2026, 3, 1), {"issue_price": "0.02"}),
        (f.T0.date(), {"expiry_months": 12}),
    ):
        economics.set_version(
            session,
            effective_from=day,
            settings=settings,
            merchant_id=bakery,
            actor_id="test",
            now=f.T0,
        )
    f.purchase(session, alice, bakery, 80)

    run = runs.settle(session, f.T0.date(), f.T0 + timedelta(days=1))

    [position] = session.execute(
        select(SettlementPosition).where(SettlementPosition.run_id == run.id)
    ).scalars()
    assert (position.issued, position.owed) == (80, "1.60")


def test_null_removes_one_override_and_keeps_the_others(client, session, operator, today):
    mer = public_id(session, f.merchant(session))
    day = today + timedelta(days=1)
    own = {"issue_price": "0.02", "expiry_months": 12}
    client.put(ECONOMICS, json=version(day, own, merchant=mer), headers=operator)

    response = client.put(
        ECONOMICS,
        json=version(day + timedelta(days=7), {"issue_price": None}, merchant=mer),
        headers=operator,
    )

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["version"]["terms"] == {"issue_price": None}
    assert merchant_terms_on(client, operator, mer, day) == {**SEEDED, **own}
    assert merchant_terms_on(client, operator, mer, day + timedelta(days=7)) == {
        **SEEDED,
        "expiry_months": 12,
    }
    every = {name: None for name in economics.MERCHANT_SETTINGS}
    client.put(
        ECONOMICS, json=version(day + timedelta(days=9), every, merchant=mer), headers=operator
    )
    assert merchant_terms_on(client, operator, mer, day + timedelta(days=9)) == SEEDED


def test_an_empty_override_replacing_a_scheduled_one_cancels_it(client, session, operator, today):
    mer = public_id(session, f.merchant(session))
    day = today + timedelta(days=1)
    client.put(
        ECONOMICS, json=version(day, {"issue_price": "0.02"}, merchant=mer), headers=operator
    )
    client.put(
        ECONOMICS,
        json=version(day + timedelta(days=7), {"expiry_months": 6}, merchant=mer),
        headers=operator,
    )

    response = client.put(ECONOMICS, json=version(day, {}, merchant=mer), headers=operator)

    assert response.status_code == 200, response.get_json()
    assert merchant_terms_on(client, operator, mer, day) == SEEDED
    assert merchant_terms_on(client, operator, mer, day + timedelta(days=7)) == {
        **SEEDED,
        "expiry_months": 6,
    }


@pytest.mark.parametrize(
    ("merchant", "terms", "field"),
    [
        (False, whole(issue_price=None), "issue_price"),
        (False, whole(funding_model=None), "funding_model"),
        (True, {"point_value": None}, "point_value"),
        (True, {"welcome_bonus": None}, "welcome_bonus"),
    ],
)
def test_only_a_merchants_own_settings_may_be_null(
    client, session, operator, today, merchant, terms, field
):
    extra = {"merchant": public_id(session, f.merchant(session))} if merchant else {}
    written = versions_written(session)

    response = client.put(
        ECONOMICS, json=version(today + timedelta(days=1), terms, **extra), headers=operator
    )

    refused(response, f"terms.{field}")
    assert versions_written(session) == written


@pytest.mark.parametrize(
    "setting",
    [
        {"point_value": "0.02"},
        {"funding_model": "on_redemption"},
        {"welcome_bonus": 0},
        {"currency": "EUR"},
        {"tiers": TIERS},
    ],
)
def test_a_merchant_may_not_override_a_coalition_wide_setting(
    client, session, operator, today, setting
):
    shop = f.merchant(session)
    written = versions_written(session)

    response = client.put(
        ECONOMICS,
        json=version(today + timedelta(days=1), setting, merchant=public_id(session, shop)),
        headers=operator,
    )

    refused(response, f"terms.{next(iter(setting))}")
    assert versions_written(session) == written


def test_an_unknown_merchant_is_refused_or_not_found(client, operator, today):
    unknown = "mer_" + "x" * 24

    put = client.put(
        ECONOMICS,
        json=version(today + timedelta(days=1), {"expiry_months": 6}, merchant=unknown),
        headers=operator,
    )
    get = client.get(ECONOMICS, query_string={"merchant": unknown}, headers=operator)

    refused(put, "merchant")
    assert (get.status_code, get.get_json()["code"]) == (404, "not_found")


def test_a_merchant_token_can_neither_read_nor_change_the_terms(client, session, operator, today):
    victim, attacker = f.merchant(session, "Victim"), f.merchant(session, "Attacker")
    day = today + timedelta(days=1)
    client.put(
        ECONOMICS,
        json=version(day, {"issue_price": "0.011"}, merchant=public_id(session, victim)),
        headers=operator,
    )
    till = f.merchant_headers(session, attacker)

    answers = [
        client.get(ECONOMICS, headers=till),
        client.get(ECONOMICS, query_string={"merchant": public_id(session, victim)}, headers=till),
        client.put(ECONOMICS, json=version(day, whole(welcome_bonus=0)), headers=till),
    ]

    assert [(a.status_code, a.get_json()["code"]) for a in answers] == [
        (403, "wrong_token_kind")
    ] * 3


def test_a_merchant_sees_its_own_override_in_the_database_and_no_other(session, today):
    """The second wall (row-level security): the coalition's terms are every merchant's to read,
    a merchant's overrides are its own."""
    victim, attacker = f.merchant(session, "Victim"), f.merchant(session, "Attacker")
    day = today + timedelta(days=1)
    economics.set_version(
        session,
        effective_from=day,
        settings={"issue_price": "0.011"},
        merchant_id=victim,
        actor_id="test",
        now=f.T0,
    )

    with tenancy.acting_as(tenancy.Tenant.merchant(attacker), session):
        seen_by_attacker = economics.in_force(session, day, victim)[0]
        attackers_view = economics.schedule(session, victim)
    with tenancy.acting_as(tenancy.Tenant.merchant(victim), session):
        seen_by_victim = economics.in_force(session, day, victim)[0]

    assert str(seen_by_attacker.issue_price) == SEEDED["issue_price"]
    assert attackers_view == []
    assert str(seen_by_victim.issue_price) == "0.011"


# Base rates within the earn-rate bounds.


def test_a_base_rate_outside_the_bounds_is_refused_when_a_merchant_is_made(session):
    with pytest.raises(InvalidRequest) as refusal:
        create_merchant(session, "Greedy", now=f.T0, details={"base_rate": "12"})

    assert "base_rate" in refusal.value.extra["errors"]
    assert create_merchant(session, "Modest", now=f.T0, details={"base_rate": "10"})


def test_bounds_that_would_exclude_a_merchants_base_rate_are_refused(
    client, session, operator, today
):
    shop = f.merchant(session)  # earns 1 point a euro
    day = today + timedelta(days=1)
    narrow = whole(earn_rate_bounds=["2", "10"])

    response = client.put(ECONOMICS, json=version(day, narrow), headers=operator)

    body = refused(response, "terms.earn_rate_bounds")
    assert public_id(session, shop) in body["detail"]
    # With bounds of its own first, the merchant is out of the coalition's way.
    own = version(day, {"earn_rate_bounds": ["0.5", "10"]}, merchant=public_id(session, shop))
    assert client.put(ECONOMICS, json=own, headers=operator).status_code == 200
    assert client.put(ECONOMICS, json=version(day, narrow), headers=operator).status_code == 200


def test_a_merchant_made_without_a_base_rate_earns_within_the_bounds(session, today):
    economics.set_version(
        session,
        effective_from=today + timedelta(days=1),
        settings=whole(earn_rate_bounds=["2", "10"]),
        merchant_id=None,
        actor_id="test",
        now=f.T0,
    )

    shop = create_merchant(session, "Default", now=clock.utcnow())[0]

    rate = session.execute(select(Merchant.base_rate).where(Merchant.id == shop)).scalar_one()
    assert str(rate.normalize()) == "2"


# Trading under the terms of the day.


def _in_force_since_yesterday(session, today: date, settings: dict[str, Any], merchant=None):
    """A version for a day that has begun: only the demo and tests write one, directly."""
    economics.set_version(
        session,
        effective_from=today - timedelta(days=1),
        settings=settings,
        merchant_id=merchant,
        actor_id="test",
        now=f.T0,
    )
    economics.forget()


def purchase(session, member_id: int, amount: int, external_id: str, currency: str = "EUR"):
    return {
        "member": card_of(session, member_id),
        "amount": amount,
        "currency": currency,
        "external_id": external_id,
    }


def _lot_expiries(session, member_id: int) -> set[datetime]:
    account = member_by_id(session, member_id).account_id
    return set(session.execute(select(Lot.expires_at).where(Lot.account_id == account)).scalars())


def test_a_purchase_trades_under_the_terms_of_its_day(client, session, now, today):
    bakery, florist = f.merchant(session, "Bakery"), f.merchant(session, "Florist")
    _in_force_since_yesterday(session, today, whole(welcome_bonus=250, expiry_months=6))
    _in_force_since_yesterday(session, today, {"expiry_months": 3}, merchant=bakery)
    alice, bob = f.member(session), f.member(session)

    at_bakery = client.post(
        PURCHASES,
        json=purchase(session, alice, 1000, "r-1"),
        headers=f.merchant_headers(session, bakery),
    )
    at_florist = client.post(
        PURCHASES,
        json=purchase(session, bob, 1000, "r-1"),
        headers=f.merchant_headers(session, florist),
    )

    assert at_bakery.status_code == at_florist.status_code == 201
    assert at_bakery.get_json()["transaction"]["breakdown"]["welcome"] == 250
    assert at_florist.get_json()["transaction"]["breakdown"]["welcome"] == 250
    assert _lot_expiries(session, alice) == {clock.add_months(now, 3)}
    assert _lot_expiries(session, bob) == {clock.add_months(now, 6)}


def test_a_batch_trades_under_the_terms_of_its_day(client, session, now, today):
    shop = f.merchant(session)
    _in_force_since_yesterday(session, today, whole(welcome_bonus=40, expiry_months=9))
    alice = f.member(session)

    response = client.post(
        f"{PURCHASES}/batch",
        json=[purchase(session, alice, 500, "b-1")],
        headers=f.merchant_headers(session, shop),
    )

    result = response.get_json()["results"][0]
    assert result["status"] == 201, result
    assert result["body"]["transaction"]["breakdown"]["welcome"] == 40
    assert _lot_expiries(session, alice) == {clock.add_months(now, 9)}


def _buy(session, path: str, shop: int, member_id: int, receipt: str, at: datetime) -> int:
    """A 10-euro purchase at `at` through the single or the batch path: its welcome points."""
    actor = Actor("merchant_client", "till-1")
    line = PurchaseSchema().load(purchase(session, member_id, 1000, receipt))
    if path == "single":
        result = purchases.record_purchase(
            session, merchant_id=shop, purchase=line, actor=actor, now=at
        )
    else:
        [result] = purchases.record_batch(
            session, merchant_id=shop, lines=[purchases.Line(1, purchase=line)], actor=actor, now=at
        )
    assert isinstance(result, purchases.PurchaseResult) and not result.replayed, result
    return result.transaction.breakdown["welcome"]


@pytest.mark.parametrize("path", ["single", "batch"])
def test_only_the_first_purchase_may_carry_the_welcome_bonus_whatever_it_was_then(session, path):
    """SPEC 2: the welcome bonus is for a member's first purchase anywhere. A member whose first
    purchase came while the bonus was 0 has had its first purchase: a later bonus is not its."""
    for day, bonus in ((date(2026, 9, 1), 0), (date(2026, 10, 1), 100)):
        economics.set_version(
            session,
            effective_from=day,
            settings=whole(welcome_bonus=bonus),
            merchant_id=None,
            actor_id="test",
            now=f.T0,
        )
    bakery, florist = f.merchant(session, "Bakery"), f.merchant(session, "Florist")
    early, late = f.member(session), f.member(session)
    september, october = (
        datetime(2026, 9, 15, 10, tzinfo=UTC),
        datetime(2026, 10, 5, 10, tzinfo=UTC),
    )

    first = _buy(session, path, bakery, early, "s-1", september)
    again = _buy(session, path, florist, early, "o-1", october)
    newcomer = _buy(session, path, florist, late, "o-2", october)

    assert (first, again, newcomer) == (0, 0, 100)
    assert reads.balance(session, early, october)["balance"] == 10 + 10


def test_a_purchase_in_a_currency_no_longer_in_force_is_refused(client, session, now, today):
    shop = f.merchant(session)
    _in_force_since_yesterday(session, today, whole(currency="USD"))
    till = f.merchant_headers(session, shop)
    euros = purchase(session, f.member(session), 500, "c-1")

    single = client.post(PURCHASES, json=euros, headers=till)
    batch = client.post(f"{PURCHASES}/batch", json=[euros], headers=till)
    dollars = client.post(PURCHASES, json={**euros, "currency": "USD"}, headers=till)

    assert single.status_code == 422
    assert single.get_json()["code"] == "unsupported_currency"
    assert single.get_json()["errors"] == {"currency": ["must be USD"]}
    assert batch.get_json()["results"][0]["status"] == 422
    assert dollars.status_code == 201


def test_a_redemption_is_worth_the_point_value_of_its_day(client, session, now, today):
    shop = f.merchant(session)
    _in_force_since_yesterday(session, today, whole(point_value="0.02"))
    alice = f.member(session)
    f.purchase(session, alice, shop, 500, now=now)

    response = client.post(
        "/api/v1/redemptions",
        json={"points": 150, "external_id": "x-1"},
        headers=f.member_headers(session, shop, alice, "redeem"),
    )

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["transaction"]["value"] == {"amount": 300, "currency": "EUR"}
