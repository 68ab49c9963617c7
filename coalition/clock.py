"""Time. Services take `now` from their caller so tests can move the clock; only the edges (a
request, a job) ask the wall clock. Business days are dates in the coalition's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(UTC)


def business_date(moment: datetime, zone: str) -> date:
    return moment.astimezone(ZoneInfo(zone)).date()


def end_of_business_date(day: date, zone: str) -> datetime:
    """The first instant after `day` in the coalition's zone, in UTC (exclusive cutoff)."""
    start_next = datetime.combine(day + timedelta(days=1), time.min, tzinfo=ZoneInfo(zone))
    return start_next.astimezone(UTC)


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` later; the month's last day when it is shorter (a lot
    issued on 31 January with a one-month life expires on 28 or 29 February)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    for day in range(moment.day, 27, -1):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    return moment.replace(year=year, month=month)
