"""The core's jobs: expiry of lots (with the 30-day notices) and the purge of idempotency keys.
Each works in bounded batches, one transaction each, so a kill at any point loses nothing and a
rerun finishes the job."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from flask import Flask, current_app

from coalition import clock, idempotency
from coalition.extensions import db
from coalition.jobs import register_daily, task
from coalition.ledger.expiry import NOTICE_AHEAD, expire_due_lots, notify_expiring
from coalition.ledger.rows import Actor

log = logging.getLogger(__name__)

BATCH_MEMBERS = 1000
EXPIRY_ACTOR = Actor("job", "expire-points")


def expire_points(day: date, now: datetime) -> None:
    """Expire every lot due by the end of business day `day`, then tell members of what expires
    in the 30 days after the day this run comes on. Each step is a loop of batches, one
    transaction each, that finds only what is left to do: a crash anywhere loses nothing and a
    rerun (the same day again) repeats nothing."""
    zone = current_app.config["COALITION_TIMEZONE"]
    cutoff = min(clock.end_of_business_date(day, zone), now)
    # The run after day `day` comes on the next day: lots expiring up to 30 days after it ends
    # are told of then, so a notice comes at least 30 days ahead (decision X2).
    horizon = clock.end_of_business_date(day + timedelta(days=1), zone) + NOTICE_AHEAD
    members = 0
    while touched := expire_due_lots(
        db.session(), cutoff=cutoff, now=clock.utcnow(), actor=EXPIRY_ACTOR, limit=BATCH_MEMBERS
    ):
        db.session.commit()
        members += touched
    noticed = 0
    while touched := notify_expiring(
        db.session(), horizon=horizon, now=clock.utcnow(), limit=BATCH_MEMBERS
    ):
        db.session.commit()
        noticed += touched
    db.session.commit()
    log.info(
        "expiry for %s: %d members' points expired, %d told of expiring points",
        day.isoformat(),
        members,
        noticed,
    )


@task
def purge_idempotency_keys() -> int:
    purged = idempotency.purge(db.session(), clock.utcnow())
    db.session.commit()
    return purged


def init_app(app: Flask) -> None:
    register_daily(app, "expire-points", expire_points)
