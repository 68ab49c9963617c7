"""The coalition's time zone, in which insights count business dates and months."""

from __future__ import annotations

from flask import current_app


def name() -> str:
    return str(current_app.config["COALITION_TIMEZONE"])
