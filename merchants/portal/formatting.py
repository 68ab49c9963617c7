"""How the portal shows numbers, days and moments, in the visitor's language and the
coalition's time zone."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel import dates as babel_dates
from babel import numbers as babel_numbers
from flask import current_app
from flask_babel import get_locale
from flask_babel import gettext as _


def zone() -> str:
    return str(current_app.config["COALITION_TIMEZONE"])


def points(number: int) -> str:
    return babel_numbers.format_decimal(number, locale=get_locale())


def money(amount: Decimal | str, currency: str) -> str:
    return babel_numbers.format_currency(Decimal(amount), currency, locale=get_locale())


def day(value: date) -> str:
    return babel_dates.format_date(value, "medium", locale=get_locale())


def moment(value: datetime) -> str:
    local = value.astimezone(ZoneInfo(zone()))
    return f"{day(local.date())} {babel_dates.format_time(local, 'short', locale=get_locale())}"


def type_words() -> dict[str, str]:
    return {
        "earn": _("Purchase"),
        "redeem": _("Redemption"),
        "refund": _("Refund"),
        "reversal": _("Reversal"),
        "expiry": _("Expiry"),
    }


def status_words() -> dict[str, str]:
    return {
        "pending": _("Awaiting approval"),
        "active": _("Active"),
        "suspended": _("Suspended"),
        "refused": _("Refused"),
    }


def helpers() -> dict[str, Any]:
    return {
        "points": points,
        "money": money,
        "day": day,
        "moment": moment,
        "type_words": type_words(),
        "status_words": status_words(),
    }
