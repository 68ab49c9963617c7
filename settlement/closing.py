"""Closing the books (SPEC 3.5, 3.8): settle every day not yet settled, from the first of a
month through a given day, and state every month that has ended by then. The nightly job, the
`coalition statements` command and the demo all close this way, each through its own day (the
job and the command through the last day of the month they state, the demo through yesterday).
The statements' payments are then submitted by the job `settlement.tasks.submit_payments`:
enqueued by the nightly job, run in its own process by the command, not at all by the demo,
which has no Stripe account to pay from."""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from settlement import runs, statements


@dataclass(frozen=True)
class Closed:
    """The days settled now, oldest first, and the statements of the months stated, in order."""

    days_settled: list[date]
    statements: list[Any]


def close(
    session: Session,
    first: date,
    through: date,
    now: datetime,
    walk: Callable[[list[date]], Iterable[date]] = iter,
) -> Closed:
    """Settle every day from `first` (the first of a month) through `through` without a final
    run, oldest first, each run committing on its own, then state each month from `first`'s
    that ends by `through`, and commit. `walk` goes over the days to settle (a progress bar may
    wrap them). A month that cannot be stated is refused before anything is written."""
    months = _months_ended(first, through)
    for month in months:
        statements.check_statable(session, month, now)
    days = runs.unsettled_days(session, first, through)
    for day in walk(days):
        runs.settle(session, day, now)
    stated = [row for month in months for row in statements.issue_month(session, month, now)]
    session.commit()
    return Closed(days_settled=days, statements=stated)


def _months_ended(first: date, through: date) -> list[str]:
    """The months, as `2026-10`, from `first`'s whose last day is `through` or earlier."""
    months = []
    start = first.replace(day=1)
    while (last := start.replace(day=calendar.monthrange(start.year, start.month)[1])) <= through:
        months.append(f"{start:%Y-%m}")
        start = last + timedelta(days=1)
    return months
