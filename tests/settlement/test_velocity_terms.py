"""Velocity limits as economics settings (issue 13 point 9): set by the operator with the other
terms, validated, off unless set, carried over when a version leaves them out; a merchant may
have its own hourly limit but not a member limit of its own."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests import factories as f
from tests.settlement.test_economics import (
    ECONOMICS,
    SEEDED,
    public_id,
    refused,
    version,
    versions_written,
    whole,
)
from tests.settlement.test_economics import now as now
from tests.settlement.test_economics import operator as operator
from tests.settlement.test_economics import today as today

LIMITS = {"member_daily_points_limit": 5000, "merchant_hourly_points_limit": 20000}


def test_the_limits_are_off_until_the_operator_sets_them(client, operator, today):
    day = today + timedelta(days=1)

    before = client.get(ECONOMICS, headers=operator).get_json()["current"]
    put = client.put(ECONOMICS, json=version(day, whole(**LIMITS)), headers=operator)
    then = client.get(f"{ECONOMICS}?date={day.isoformat()}", headers=operator)

    assert before["member_daily_points_limit"] is None
    assert before["merchant_hourly_points_limit"] is None
    assert put.status_code == 200, put.get_json()
    assert then.get_json()["current"] | LIMITS == then.get_json()["current"]


def test_a_version_that_leaves_the_limits_out_keeps_those_of_the_day_before(
    client,
    operator,
    today,
):
    client.put(
        ECONOMICS, json=version(today + timedelta(days=2), whole(**LIMITS)), headers=operator
    )
    older_client = {k: v for k, v in SEEDED.items() if k not in LIMITS}

    put = client.put(
        ECONOMICS,
        json=version(today + timedelta(days=5), older_client | {"welcome_bonus": 7}),
        headers=operator,
    )
    off = client.put(
        ECONOMICS,
        json=version(today + timedelta(days=9), whole(member_daily_points_limit=None)),
        headers=operator,
    )

    assert put.status_code == 200, put.get_json()
    assert put.get_json()["version"]["terms"] | LIMITS == put.get_json()["version"]["terms"]
    assert off.status_code == 200, off.get_json()
    assert off.get_json()["version"]["terms"]["member_daily_points_limit"] is None


@pytest.mark.parametrize("value", [0, -5, 1.5, "100", 2_000_000_000])
@pytest.mark.parametrize("setting", sorted(LIMITS))
def test_a_limit_is_a_whole_number_of_points_from_one(
    client,
    session,
    operator,
    today,
    setting,
    value,
):
    written = versions_written(session)

    response = client.put(
        ECONOMICS,
        json=version(today + timedelta(days=1), whole(**{setting: value})),
        headers=operator,
    )

    refused(response, f"terms.{setting}")
    assert versions_written(session) == written


def test_a_merchant_may_have_its_own_hourly_limit_but_no_member_limit(
    client,
    session,
    operator,
    today,
):
    shop = public_id(session, f.merchant(session))
    day = today + timedelta(days=1)

    own = client.put(
        ECONOMICS,
        json=version(day, {"merchant_hourly_points_limit": 300}, merchant=shop),
        headers=operator,
    )
    member_limit = client.put(
        ECONOMICS,
        json=version(day, {"member_daily_points_limit": 300}, merchant=shop),
        headers=operator,
    )
    seen = client.get(f"{ECONOMICS}?date={day.isoformat()}&merchant={shop}", headers=operator)

    assert own.status_code == 200, own.get_json()
    refused(member_limit, "terms.member_daily_points_limit")
    assert seen.get_json()["current"]["merchant_hourly_points_limit"] == 300
