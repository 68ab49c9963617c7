"""The core's jobs: confirmation of pending points, expiry of lots (with the 30-day notices), the
nightly recalculation of tiers, the premium memberships' renewal reminders and lapses, the
nightly fraud report, and the purge of idempotency keys. Each works in bounded batches, one
transaction each, or in one set-based transaction (tiers, the fraud report), so a kill at any
point loses nothing and a rerun finishes the job."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from flask import Flask, current_app

from coalition import clock, economics, idempotency
from coalition.extensions import db
from coalition.fraud import report as fraud_reports
from coalition.jobs import register_daily, task
from coalition.ledger.expiry import NOTICE_AHEAD, expire_due_lots, notify_expiring
from coalition.ledger.pending import confirm_due_lots
from coalition.ledger.rows import Actor
from coalition.members import premium, tiers
from coalition.segments import services as segments

log = logging.getLogger(__name__)

BATCH_MEMBERS = 1000
EXPIRY_ACTOR = Actor("job", "expire-points")


def confirm_points(day: date, now: datetime) -> None:
    """SPEC 2, Pending points: confirm every lot whose pending window ended by the end of
    business day `day`. Its points become spendable and settlement counts them as issued on the
    day of the confirmation (when it is written). Runs before expiry, so a lot is confirmed
    before it could expire."""
    cutoff = min(clock.end_of_business_date(day, current_app.config["COALITION_TIMEZONE"]), now)
    members = 0
    while touched := confirm_due_lots(
        db.session(), cutoff=cutoff, now=clock.utcnow(), limit=BATCH_MEMBERS
    ):
        db.session.commit()
        members += touched
    db.session.commit()
    log.info("pending points for %s: %d members' points confirmed", day.isoformat(), members)


def expire_points(day: date, now: datetime) -> None:
    """Expire every lot due by the end of business day `day`, then tell members of what expires
    in the 30 days after the day this run comes on. Each step is a loop of batches, one
    transaction each, that finds only what is left to do: a crash anywhere loses nothing and a
    rerun (the same day again) repeats nothing."""
    zone = current_app.config["COALITION_TIMEZONE"]
    cutoff = min(clock.end_of_business_date(day, zone), now)
    # The run after day `day` comes on the next day: lots expiring up to 30 days after it ends
    # are told of then, so a notice comes at least 30 days ahead (decision 208).
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


def recalculate_tiers(day: date, now: datetime) -> None:
    """Every member's tier as its qualifying spend says after business day `day`: downgrades
    (only here) and upgrades a purchase did not make, with their events, in one transaction."""
    done = tiers.recalculate(db.session(), day, now)
    db.session.commit()
    log.info(
        "tiers after %s (spend since %s): %d members changed tier",
        day.isoformat(),
        done.since.isoformat(),
        done.changed,
    )


def premium_memberships(day: date, now: datetime) -> None:
    """Lapse the premium memberships whose year ended by the end of business day `day`, then
    send `membership.renewal_due` to those ending within the reminder window (once each)."""
    cutoff = min(clock.end_of_business_date(day, current_app.config["COALITION_TIMEZONE"]), now)
    reminder_days = economics.coalition_terms(db.session(), day).premium.reminder_days
    done = premium.run_daily(db.session(), cutoff, reminder_days)
    log.info(
        "premium memberships for %s: %d lapsed, %d reminded",
        day.isoformat(),
        done["lapsed"],
        done["reminded"],
    )


def evaluate_segments(day: date, now: datetime) -> None:
    """Every live segment's members as of the run, after business day `day` (its purchases,
    the tiers recalculated before it, consents and attributes as they are now): recency and
    lapse move with time alone, so each segment is evaluated again, one transaction each."""
    evaluated = segments.evaluate_all(db.session(), now, commit=db.session.commit)
    db.session.commit()
    log.info("segments after %s: %d evaluated", day.isoformat(), evaluated)


def fraud_report(day: date, now: datetime) -> None:
    """SPEC 3.10: the fraud report of business day `day`, its alerts written once each (a rerun
    of the day writes none again), in one transaction."""
    written = fraud_reports.run(
        db.session(), day, current_app.config["COALITION_TIMEZONE"], clock.utcnow()
    )
    db.session.commit()
    log.info(
        "fraud report for %s: %d alerts (%s)",
        day.isoformat(),
        sum(written.values()),
        ", ".join(f"{kind} {n}" for kind, n in sorted(written.items())) or "none",
    )


@task
def purge_idempotency_keys() -> int:
    purged = idempotency.purge(db.session(), clock.utcnow())
    db.session.commit()
    return purged


def init_app(app: Flask) -> None:
    register_daily(app, "confirm-points", confirm_points)
    register_daily(app, "expire-points", expire_points)
    register_daily(app, "recalculate-tiers", recalculate_tiers)
    register_daily(app, "premium-memberships", premium_memberships)
    register_daily(app, "evaluate-segments", evaluate_segments)
    register_daily(app, "fraud-report", fraud_report)
