"""Settlement's jobs (SPEC 3.8), each calling services: each closed business day is settled by
the nightly run, and on the 1st the month that ended is closed (`settlement.closing`) and its
payments submitted. Both go through `run_daily`, so a night missed while nothing ran is caught up
by the next run (QUALITY B4), oldest day first, settlement before statements. Also the run of a
day the operator asked for over the API, and the payments job, hourly and after statements."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from flask import Flask, current_app

from coalition import clock
from coalition.extensions import db
from coalition.jobs import enqueue, exclusive, register_daily, task
from settlement import closing, payments, runs
from settlement.gateway import gateway

log = logging.getLogger(__name__)


def settle_day(day: date, now: datetime) -> None:
    run = runs.settle(db.session(), day, now)
    log.info("settlement of %s: %s", day.isoformat(), run.status)


def state_month(day: date, now: datetime) -> None:
    """On the last day of a month (done the night after it), close that month (after a long
    outage the catch-up window may begin inside it: the days it missed are settled first) and
    submit its payments."""
    if (day + timedelta(days=1)).day != 1:
        return
    closed = closing.close(db.session(), day.replace(day=1), day, now)
    log.info("statements of %s: %d", day.strftime("%Y-%m"), len(closed.statements))
    enqueue(submit_payments, queue="settlement")


@task
def run_settlement(public_id: str) -> str:
    """The job behind `POST /api/v1/ops/settlement-runs`."""
    return str(runs.execute(db.session(), public_id).status)


@task
def submit_payments(now: str | None = None) -> dict[str, int]:
    """The payments job (SPEC 3.8), hourly and after statements, safe to run again at any time:
    carry out every due payment instruction at Stripe. Returns how many ended in each state."""
    moment = datetime.fromisoformat(now) if now else clock.utcnow()
    gw = gateway(current_app)
    if not gw.configured:
        return payments.wait_for_stripe(db.session())
    with exclusive("submit_payments") as mine:
        if not mine:
            log.info("submit_payments is running elsewhere; skipped")
            return {}
        return payments.submit_due(db.session(), gw, moment)


def init_app(app: Flask) -> None:
    register_daily(app, "settle", settle_day)
    register_daily(app, "statements", state_month)
