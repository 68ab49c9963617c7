"""Settlement's jobs (SPEC 3.8): each closed business day is settled by the nightly run, and on
the 1st the month that ended is stated and its payments submitted. Both go through `run_daily`,
so a night missed while nothing ran is caught up by the next run (QUALITY B4), oldest day first,
settlement before statements."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from flask import Flask

from coalition.extensions import db
from coalition.jobs import enqueue, register_daily
from settlement import payments, runs, statements

log = logging.getLogger(__name__)


def settle_day(day: date, now: datetime) -> None:
    run = runs.settle(db.session(), day, now)
    log.info("settlement of %s: %s", day.isoformat(), run.status)


def state_month(day: date, now: datetime) -> None:
    """On the last day of a month (done the night after it), state that month and submit its
    payments."""
    if (day + timedelta(days=1)).day != 1:
        return
    month = day.strftime("%Y-%m")
    first, last = statements.parse_month(month)
    # After a long outage the catch-up window may begin inside this month: settle what it missed.
    for missed in runs.unsettled_days(db.session(), first, last):
        runs.settle(db.session(), missed, now)
    issued = statements.issue_month(db.session(), month, now)
    db.session.commit()
    log.info("statements of %s: %d", month, len(issued))
    enqueue(payments.submit_payments, queue="settlement")


def init_app(app: Flask) -> None:
    register_daily(app, "settle", settle_day)
    register_daily(app, "statements", state_month)
