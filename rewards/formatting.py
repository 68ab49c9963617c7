"""How the catalogue's pages write points, money and days, the same in each face (the faces'
own helpers differ in what they take): registered for every template as `rw_*`."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel import dates as babel_dates
from babel import numbers as babel_numbers
from flask import current_app
from flask_babel import get_locale

from coalition import economics


def _local(moment: datetime) -> datetime:
    return moment.astimezone(ZoneInfo(current_app.config["COALITION_TIMEZONE"]))


def points(number: int) -> str:
    return str(babel_numbers.format_decimal(number, locale=get_locale()))


def day(moment: datetime) -> str:
    """The coalition's day of a moment."""
    return str(babel_dates.format_date(_local(moment).date(), "medium", locale=get_locale()))


def last_day(until: datetime) -> str:
    """The last day a period ending (exclusively) at `until` covers."""
    return day(until - timedelta(microseconds=1))


def moment(value: datetime) -> str:
    local = _local(value)
    time = babel_dates.format_time(local, "short", locale=get_locale())
    return f"{day(value)} {time}"


def money(value: dict[str, Any]) -> str:
    """`{"amount" (minor units), "currency"}` in the visitor's notation."""
    digits = economics.MINOR_UNIT_DIGITS.get(value["currency"], 2)
    units = Decimal(value["amount"]).scaleb(-digits)
    return str(babel_numbers.format_currency(units, value["currency"], locale=get_locale()))


def helpers() -> dict[str, Any]:
    return {
        "rw_points": points,
        "rw_day": day,
        "rw_last_day": last_day,
        "rw_moment": moment,
        "rw_money": money,
    }
