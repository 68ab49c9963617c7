"""The insights' nightly job (decision 342): the operator's coalition-wide figures for the
default range, computed once the day has closed. One transaction; a rerun replaces the snapshot
with the same figures."""

from __future__ import annotations

import logging
from datetime import date, datetime

from flask import Flask, current_app

from coalition import clock
from coalition.extensions import db
from coalition.jobs import register_daily
from insights import services

log = logging.getLogger(__name__)


def precompute_insights(day: date, now: datetime) -> None:
    span = services.precompute(
        db.session(), day, clock.utcnow(), current_app.config["COALITION_TIMEZONE"]
    )
    db.session.commit()
    log.info("insights of %s to %s kept", span.first.isoformat(), span.last.isoformat())


def init_app(app: Flask) -> None:
    register_daily(app, "insights", precompute_insights)
