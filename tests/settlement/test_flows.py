"""A run's issuer x redeemer flows, written by one INSERT … SELECT (settlement/engine.py): over
random days they are the day's lot consumptions summed pair by pair in Python (redemptions and
repayments less reversals, pairs that net to nothing left out), and the amount the database
writes for a flow is the text `decimal_text` gives its exact value, on both backends."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import BigInteger, literal, select
from sqlalchemy.orm import Session

from coalition import economics
from coalition.ledger.models import Account, LotConsumption
from settlement import engine, runs
from settlement.models import SettlementFlow
from tests.settlement.test_conservation import _act, _world, step

FIRST_DAY = date(2027, 6, 1)
_days = iter(range(10_000))


def _pairs_row_by_row(session: Session, start: datetime, end: datetime) -> dict:
    merchant_of = dict(session.execute(select(Account.id, Account.merchant_id)).all())
    points: dict[tuple, int] = defaultdict(int)
    for c in session.execute(
        select(LotConsumption).where(
            LotConsumption.created_at >= start, LotConsumption.created_at < end
        )
    ).scalars():
        sign = {"redeem": 1, "repay": 1, "restore": -1}.get(c.kind)
        if sign:
            pair = (merchant_of.get(c.issuer_account_id), merchant_of.get(c.redeemer_account_id))
            points[pair] += sign * c.points
    return {pair: p for pair, p in points.items() if p}


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    model=st.sampled_from(["prefunded", "on_redemption"]),
    yesterday=st.lists(step, max_size=6),
    today=st.lists(step, min_size=1, max_size=25),
)
def test_flows_are_the_days_consumptions_summed_pair_by_pair(session, model, yesterday, today):
    day = FIRST_DAY + timedelta(days=3 * next(_days))
    world = _world(session, day - timedelta(days=1), model, ["0.0125"] * 3)
    purchases: list = []
    redemptions: list = []
    ordered: list = []  # orders of rewards (issue 15): redemptions at their suppliers
    for offset, specs in ((1, yesterday), (0, today)):
        for i, spec in enumerate(specs):
            now = datetime.combine(day - timedelta(days=offset), datetime.min.time(), UTC)
            now += timedelta(hours=9, minutes=i)
            _act(session, world, spec, now, purchases, redemptions, ordered)

    run = runs.settle(
        session, day, datetime.combine(day + timedelta(days=2), datetime.min.time(), UTC)
    )

    value = economics.merchant_terms(session, day)[0].point_value
    written = session.execute(
        select(SettlementFlow).where(SettlementFlow.run_id == run.id).order_by(SettlementFlow.id)
    ).scalars()
    found = {
        (row.issuer_merchant_id, row.redeemer_merchant_id): (row.points, row.amount)
        for row in written
    }
    expected = _pairs_row_by_row(session, run.window_start, run.window_end)
    assert found == {
        pair: (points, engine.decimal_text(value * points)) for pair, points in expected.items()
    }


@pytest.mark.both_backends
@pytest.mark.parametrize("digits", [2, 0, 3])
@pytest.mark.parametrize("value", ["0.01", "0.0125", "0.10", "1", "1E+1", "0.001", "2.5"])
def test_the_database_writes_a_flows_amount_as_decimal_text_does(session, value, digits):
    point_value = Decimal(value)
    for points in (1, 3, 4, 10, 99, 100, 150, 1000, 123_456_789, -1, -4, -150, -80):
        amount = engine.amount_sql(literal(points, BigInteger), point_value, digits)
        written = session.execute(select(amount)).scalar_one()
        assert written == engine.decimal_text(point_value * points, digits), points
