"""The catalogue's nightly job (SPEC 2, 3.8): cancel the orders not fulfilled within their
supplier's promised days, giving their points back. In batches, one transaction each, each
order locked and checked again: a kill at any point loses nothing and a rerun repeats nothing."""

from __future__ import annotations

import logging
from datetime import date, datetime

from flask import Flask, current_app

from coalition import clock
from coalition.extensions import db
from coalition.jobs import register_daily
from rewards import services

log = logging.getLogger(__name__)

BATCH_ORDERS = 200


def cancel_overdue_orders(day: date, now: datetime) -> None:
    """Cancel every pending order due by the end of business day `day` (or by now, if sooner)."""
    cutoff = min(clock.end_of_business_date(day, current_app.config["COALITION_TIMEZONE"]), now)
    cancelled = 0
    while done := services.cancel_overdue(
        db.session(), cutoff=cutoff, now=clock.utcnow(), limit=BATCH_ORDERS
    ):
        db.session.commit()
        cancelled += done
    db.session.commit()
    log.info("orders due by %s: %d cancelled, points given back", day.isoformat(), cancelled)


def init_app(app: Flask) -> None:
    register_daily(app, "cancel-overdue-orders", cancel_overdue_orders)
