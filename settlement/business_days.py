"""Business days (SPEC 3.5): settlement counts its days in the coalition's time zone, and every
settlement module reads that zone here, from the app's `COALITION_TIMEZONE`, rather than take it
as an argument."""

from __future__ import annotations

from datetime import date, datetime

from flask import current_app

from coalition import clock


def zone() -> str:
    """The coalition's time zone, e.g. `Europe/Berlin`."""
    return str(current_app.config["COALITION_TIMEZONE"])


def today(now: datetime) -> date:
    """The business day `now` falls on."""
    return clock.business_date(now, zone())
