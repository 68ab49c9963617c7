"""Settlement runs: a closed day settled exactly once (QUALITY B2), a day still open reported
provisionally, entries never slipping into a settled day, and a write in flight waited for."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from coalition import tenancy
from coalition.errors import InvalidRequest
from coalition.extensions import db
from settlement import runs
from settlement.models import SettlementPosition
from tests import factories as f
from tests.merchants.test_batch import statements

DAY = date(2026, 3, 2)  # the factories' T0 is 10:00 UTC on this day
NEXT_MORNING = datetime(2026, 3, 3, 6, tzinfo=UTC)


def _positions(session: Session, run_id: int) -> list[tuple[int, int, str]]:
    rows = session.execute(
        select(SettlementPosition).where(SettlementPosition.run_id == run_id)
    ).scalars()
    return sorted((p.merchant_id, p.issued, p.net) for p in rows)


def _run_id(session: Session, public_id: str) -> int:
    return int(runs.run_by_public_id(session, public_id).id)


def test_a_closed_day_is_settled_once_and_asking_again_returns_that_run(session):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 80)

    first = runs.settle(session, DAY, NEXT_MORNING)
    again = runs.settle(session, DAY, NEXT_MORNING + timedelta(hours=5))

    assert (first.kind, first.status) == ("final", "succeeded")
    assert again.public_id == first.public_id
    assert _positions(session, first.id) == [(shop, 80, "1.00")]  # 80 x 0.0125
    assert session.execute(select(func.count()).select_from(runs.runs)).scalar_one() == 1


def test_a_day_that_has_not_ended_is_reported_provisionally_and_moves_nothing(session):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 40)
    noon = datetime(2026, 3, 2, 12, tzinfo=UTC)

    provisional = runs.settle(session, DAY, noon)
    f.purchase(session, alice, shop, 40, now=noon + timedelta(hours=1))  # the day goes on
    final = runs.settle(session, DAY, NEXT_MORNING)

    assert provisional.kind == "provisional"
    assert _positions(session, provisional.id) == [(shop, 40, "0.50")]
    assert final.kind == "final" and final.public_id != provisional.public_id
    assert _positions(session, final.id) == [(shop, 80, "1.00")]


def test_a_day_that_has_not_begun_cannot_be_settled(session):
    with pytest.raises(InvalidRequest):
        runs.request_run(session, DAY + timedelta(days=1), datetime(2026, 3, 2, 12, tzinfo=UTC))
    assert session.execute(select(func.count()).select_from(runs.runs)).scalar_one() == 0


def test_nothing_can_be_entered_into_a_settled_day(session):
    shop, alice = f.merchant(session), f.member(session)
    runs.settle(session, DAY, NEXT_MORNING)
    savepoint = session.begin_nested()

    # A till whose clock still read the settled day: refused by the database, nothing written.
    with pytest.raises(DBAPIError, match="business_day_closed"):
        f.purchase(session, alice, shop, 10, now=datetime(2026, 3, 2, 22, 59, tzinfo=UTC))
    savepoint.rollback()

    later = f.purchase(session, alice, shop, 10, now=datetime(2026, 3, 2, 23, 0, tzinfo=UTC))
    assert later["member"]["balance"] == 10  # midnight in Berlin: the next day is open


def _settle_in_thread(app: Flask, results: list[object]) -> threading.Thread:
    def settle() -> None:
        with app.app_context(), tenancy.acting_as(tenancy.SYSTEM):
            results.append(runs.settle(db.session(), DAY, NEXT_MORNING).public_id)
            db.session.remove()

    thread = threading.Thread(target=settle)
    thread.start()
    return thread


def test_a_write_in_flight_when_the_day_closes_is_waited_for_and_settled_once(committed):
    with committed.app_context():
        shop, alice = f.merchant(db.session), f.member(db.session)
        db.session.commit()
    engine = create_engine(committed.config["SQLALCHEMY_DATABASE_URI"], poolclass=NullPool)
    late = Session(engine)
    # A purchase dated 23:30 Berlin, not yet committed when the run starts.
    f.purchase(late, alice, shop, 80, now=datetime(2026, 3, 2, 22, 30, tzinfo=UTC))

    results: list[object] = []
    thread = _settle_in_thread(committed, results)
    thread.join(timeout=2)
    assert thread.is_alive(), "the run must wait for the write in flight"
    late.commit()
    thread.join(timeout=60)
    late.close()
    engine.dispose()

    with committed.app_context():
        run = runs.run_by_public_id(db.session(), str(results[0]))
        assert _positions(db.session(), run.id) == [(shop, 80, "1.00")]


def test_two_runs_of_one_day_at_once_settle_it_once(committed):
    with committed.app_context():
        shop, alice = f.merchant(db.session), f.member(db.session)
        f.purchase(db.session, alice, shop, 80)
        db.session.commit()
    results: list[object] = []

    threads = [_settle_in_thread(committed, results) for _ in range(4)]
    for thread in threads:
        thread.join(timeout=60)

    assert len(results) == 4 and len(set(results)) == 1
    with committed.app_context():
        run = runs.run_by_public_id(db.session(), str(results[0]))
        assert run.attempts == 1
        assert _positions(db.session(), run.id) == [(shop, 80, "1.00")]
        count = db.session.execute(select(func.count()).select_from(SettlementPosition))
        assert count.scalar_one() == 1


def test_a_run_sends_the_same_statements_for_a_quiet_day_or_a_busy_one(session):
    """Set-based (issue 4): the day's rows are read by three GROUP BY queries, whatever their
    number, so neither the statements sent nor the rows brought into Python grow with the day."""
    shops = [f.merchant(session) for _ in range(3)]
    members = [f.member(session) for _ in range(40)]

    def settle(day: date, purchases: int) -> tuple[int, int]:
        start = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=8)
        for n in range(purchases):
            member, shop = members[n % len(members)], shops[n % len(shops)]
            f.purchase(session, member, shop, 10, welcome=5, now=start + timedelta(seconds=n))
            f.redeem(session, member, shops[(n + 1) % 3], 3, now=start + timedelta(seconds=n))
        with statements() as sent:
            run = runs.settle(session, day, start + timedelta(days=1))
        rows = sum(
            1
            for _ in session.execute(
                select(SettlementPosition).where(SettlementPosition.run_id == run.id)
            )
        )
        return len(sent), rows

    quiet = settle(date(2026, 5, 4), 3)
    busy = settle(date(2026, 5, 5), 120)

    assert quiet == busy  # statements sent, and one position per shop either way
