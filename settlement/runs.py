"""Settlement runs (SPEC 3.5, QUALITY B1, B2, B4): one final run per closed business day, settled
exactly once; provisional runs report on a day still open and move nothing.

Exactly once, step by step:
1. The run's row is inserted (a final one at most once per day: a unique index) and committed.
   From then on the settlement gate (a trigger on transfers and lot consumptions, see the
   migration 20261122_settlement) refuses any entry dated before the end of a day that has a
   final run: a write whose clock read an earlier time fails and is retried by its caller.
2. On PostgreSQL the run takes the gate's advisory lock exclusively, for an instant: every ledger
   write holds it shared until it commits, so this waits for writes in flight, and after it every
   entry dated in the day is committed and visible.
3. In one transaction, holding the run's row lock (a second run of the day waits here, then
   finds the first's result), the day is priced and its positions, flows and totals written.
A kill at any step leaves either nothing or the finished run; the rerun computes the same
numbers from the same immutable rows."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, insert, select, text, update
from sqlalchemy.orm import Session

from coalition import audit, clock, economics, faults
from coalition.database import insert_unless_present, table
from coalition.errors import InvalidRequest, NotFound
from coalition.ids import new_id
from settlement import business_days, engine
from settlement.models import SettlementFlow, SettlementPosition, SettlementRun

log = logging.getLogger(__name__)

runs = table(SettlementRun)
positions = table(SettlementPosition)
flows = table(SettlementFlow)

GATE_LOCK = (0x636F61, 0x67617465)  # the migration's settlement gate lock
ONE_DAY = timedelta(days=1)


def fault(step: str) -> None:
    faults.point(f"settle:{step}")


def check_day(session: Session, day: date, today: date | None = None) -> None:
    """Refuse (422, naming `business_date`) a day before the coalition's first terms, when
    nothing can have happened, and, given `today`, a day that has not begun."""
    first = economics.first_day(session)
    if day < first:
        raise InvalidRequest(
            f"{day.isoformat()} is before the coalition's first terms, which take effect on"
            f" {first.isoformat()}: nothing happened then",
            errors={"business_date": [f"must be {first.isoformat()} or later"]},
        )
    if today is not None and day > today:
        raise InvalidRequest(
            f"{day.isoformat()} has not begun (today is {today.isoformat()} in"
            f" {business_days.zone()}); it cannot be settled",
            errors={"business_date": [f"must be {today.isoformat()} or earlier"]},
        )


def request_run(
    session: Session, business_date: date, now: datetime, actor: audit.Actor | None = None
) -> Any:
    """The run for `business_date`: for a closed day its one final run (made now, or the one that
    exists); for today a new provisional run. A day before the coalition's first terms or one
    that has not begun cannot be settled (422). Given an `actor`, the request is in the audit
    log."""
    today = business_days.today(now)
    check_day(session, business_date, today)
    kind = "final" if business_date < today else "provisional"
    start = clock.end_of_business_date(business_date - ONE_DAY, business_days.zone())
    end = clock.end_of_business_date(business_date, business_days.zone())
    row = {
        "public_id": new_id("run"),
        "business_date": business_date,
        "kind": kind,
        "status": "queued",
        "window_start": start,
        "window_end": end if kind == "final" else min(now, end),
        "attempts": 0,
        "created_at": now,
    }
    if kind == "provisional":
        session.execute(insert(runs).values(row))
    else:
        # One final run per day (a partial unique index): a concurrent request's row stands.
        # The index's condition as a literal: as a bound parameter, PostgreSQL cannot match it
        # to the index once a prepared statement goes to its generic plan (after psycopg
        # prepares it, on its 10th or so run on one connection), and refuses the ON CONFLICT.
        session.execute(
            insert_unless_present(
                session, runs, ["business_date"], key_where=text("kind = 'final'")
            ).values(row)
        )
        row["public_id"] = session.execute(
            select(runs.c.public_id).where(
                runs.c.business_date == business_date, runs.c.kind == "final"
            )
        ).scalar_one()
    if actor is not None:
        audit.record(
            session,
            actor,
            "settlement_run.request",
            "settlement_run",
            str(row["public_id"]),
            after={"business_date": business_date, "kind": kind},
            now=now,
        )
    session.commit()
    fault("requested")
    return run_by_public_id(session, str(row["public_id"]))


def run_by_public_id(session: Session, public_id: str) -> Any:
    row = session.execute(select(runs).where(runs.c.public_id == public_id)).one_or_none()
    if row is None:
        raise NotFound("no such settlement run")
    return row


def _wait_for_writes_in_flight(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": GATE_LOCK[0], "b": GATE_LOCK[1]}
        )
    session.commit()


def execute(session: Session, public_id: str) -> Any:
    """Price the run's day and record it, once; returns the run."""
    run = run_by_public_id(session, public_id)
    if run.status == "succeeded":
        return run
    session.rollback()
    if run.kind == "final":
        _wait_for_writes_in_flight(session)
        fault("gate")
    try:
        _price_and_record(session, run.id)
    except Exception as exc:
        session.rollback()
        session.execute(
            update(runs)
            .where(runs.c.id == run.id, runs.c.status != "succeeded")
            .values(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        )
        session.commit()
        raise
    return run_by_public_id(session, public_id)


def _price_and_record(session: Session, run_id: int) -> None:
    run = session.execute(select(runs).where(runs.c.id == run_id).with_for_update()).one()
    if run.status == "succeeded":  # a concurrent run of the day finished while this one waited
        session.rollback()
        return
    started = clock.utcnow()
    base, terms_of = economics.merchant_terms(session, run.business_date)
    engine.stage(session, run.window_start, run.window_end)
    totals = engine.read_totals(session, run.window_start, run.window_end)
    fault("totals")
    digits = economics.MINOR_UNIT_DIGITS[base.currency]
    money = lambda amount: engine.decimal_text(amount, digits)  # noqa: E731
    day = engine.price(totals, base, terms_of)
    engine.write_flows(session, run_id, base.point_value, digits)
    engine.unstage(session)
    position_rows = [
        {
            "run_id": run_id,
            "merchant_id": merchant_id,
            "issued": p.issued,
            "confirmed": p.confirmed,
            "redeemed": p.redeemed,
            "expired": p.expired,
            "clawed_back": p.clawed_back,
            "reversed": p.reversed,
            "owed": money(p.owed),
            "receivable": money(p.receivable),
            "net": money(p.net),
            "components": engine.components_json(p),
        }
        for merchant_id, p in sorted(day.positions.items())
    ]
    _write_positions(session, position_rows)
    fault("positions")
    summed = {
        key: sum(getattr(p, key) for p in day.positions.values())
        for key in ("issued", "confirmed", "redeemed", "expired", "clawed_back", "reversed")
    }
    session.execute(
        update(runs)
        .where(runs.c.id == run_id)
        .values(
            status="succeeded",
            currency=base.currency,
            funding_model=base.funding_model,
            totals={
                "points": {
                    **summed,
                    "operator_issued": totals.operator_issued,
                    "operator_confirmed": totals.operator_confirmed,
                },
                "nets": money(day.nets),
                "operator": {k: money(v) for k, v in day.operator.items()},
                "terms": base.to_json(),
                "merchants": len(day.positions),
            },
            attempts=run.attempts + 1,
            error=None,
            started_at=started,
            finished_at=clock.utcnow(),
        )
    )
    session.commit()
    fault("committed")
    log.info(
        "settled %s (%s): %d merchants, nets %s",
        run.business_date.isoformat(),
        run.kind,
        len(day.positions),
        money(day.nets),
    )


def _write_positions(session: Session, rows: list[dict[str, Any]]) -> None:
    """On PostgreSQL one statement for all of a day's positions: the rows go as one JSON
    parameter that the server reads into the table's own row type (as many INSERTs, one a
    merchant, cost more than the rest of a run but its one read of the day). COPY would be
    quicker, but PostgreSQL refuses it on a table with row-level security."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(positions), rows)
        return
    session.execute(
        text(
            f"INSERT INTO {positions.name} SELECT * FROM jsonb_populate_recordset("
            f"NULL::{positions.name}, CAST(:rows AS jsonb))"
        ),
        {"rows": json.dumps(rows)},
    )


def settle(session: Session, business_date: date, now: datetime) -> Any:
    """Request and execute the run of one day (the CLI, the nightly job and `closing`)."""
    run = request_run(session, business_date, now)
    return execute(session, run.public_id)


def settled_between(first: date, last: date) -> ColumnElement[bool]:
    """The runs that settled the business days first..last: each day's succeeded final run."""
    return and_(
        runs.c.kind == "final",
        runs.c.status == "succeeded",
        runs.c.business_date >= first,
        runs.c.business_date <= last,
    )


def unsettled_days(session: Session, first: date, last: date) -> list[date]:
    """Days in [first, last] without a succeeded final run."""
    settled = set(
        session.execute(select(runs.c.business_date).where(settled_between(first, last))).scalars()
    )
    days, day = [], first
    while day <= last:
        if day not in settled:
            days.append(day)
        day += ONE_DAY
    return days
