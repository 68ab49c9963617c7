"""Settlement's commands (SPEC 3.5): `coalition settle --date D` and `coalition statements
--month M`. Both do their work in this process, say on stderr what they are doing, and print a
summary for people, or JSON with `--json`. A day or month they cannot take is a usage error
(exit 2) with one line saying why, checked before anything is written."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, NoReturn

import click
from flask import Flask
from flask.cli import with_appcontext

from coalition import clock, tenancy
from coalition.errors import CoalitionError, InvalidRequest
from coalition.extensions import db
from settlement import closing, runs, statements, tasks
from settlement.gateway import NOT_CONFIGURED

# A summary names this many statements at most; --json lists them all (TIGER_STYLE: bounded).
SHOWN = 50


def _refuse(exc: CoalitionError, option: str) -> NoReturn:
    """The service's refusal as the command's: bad input is a usage error, anything else a
    failure of the command (exit 1), in one line either way."""
    if isinstance(exc, InvalidRequest):
        raise click.BadParameter(exc.detail, param_hint=f"'{option}'") from exc
    raise click.ClickException(exc.detail) from exc


@click.command("settle")
@click.option(
    "--date",
    "day",
    required=True,
    type=click.DateTime(["%Y-%m-%d"]),
    help="The business day, e.g. 2026-10-31.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@with_appcontext
def settle(day: datetime, as_json: bool) -> None:
    """Settle one business day (a closed day once and for all; today provisionally)."""
    with tenancy.acting_as(tenancy.SYSTEM):
        try:
            run = runs.settle(db.session(), day.date(), clock.utcnow())
        except CoalitionError as exc:
            _refuse(exc, "--date")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "id": run.public_id,
                    "business_date": run.business_date.isoformat(),
                    "kind": run.kind,
                    "status": run.status,
                    "totals": run.totals,
                }
            )
        )
        return
    for line in _run_summary(run):
        click.echo(line)


def _run_summary(run: Any) -> list[str]:
    day = run.business_date.isoformat()
    if run.kind == "final":
        head = f"{day} is settled for good (final run {run.public_id}, {run.status})."
    else:
        head = (
            f"{day} is reported provisionally (run {run.public_id}, {run.status}): the day has"
            " not ended, so nothing moves yet."
        )
    totals = run.totals or {}
    if not totals:
        return [head]
    points = totals["points"]
    merchants = totals["merchants"]
    return [
        head,
        f"{merchants} merchant{'' if merchants == 1 else 's'}; points: {points['issued']}"
        f" issued, {points['redeemed']} redeemed, {points['expired']} expired,"
        f" {points['clawed_back']} clawed back, {points['reversed']} reversed.",
        f"The merchants' nets add up to {totals['nets']} {run.currency}"
        " (positive: merchants pay the operator).",
    ]


@click.command("statements")
@click.option("--month", required=True, help="The month to state, e.g. 2026-10.")
@click.option("--json", "as_json", is_flag=True, help="Print the statements as JSON.")
@with_appcontext
def state(month: str, as_json: bool) -> None:
    """Settle any day of the month not yet settled, state the month for every merchant, and
    submit the payments."""

    def walk(days: list[date]) -> Iterator[date]:
        """The days to settle, under a progress bar; once they are, the month is stated."""
        if days:
            with click.progressbar(
                days, label=f"Settling {len(days)} days of {month}", file=sys.stderr
            ) as bar:
                yield from bar
        click.echo(f"Stating {month}...", err=True)

    now = clock.utcnow()
    with tenancy.acting_as(tenancy.SYSTEM):
        session = db.session()
        try:
            first, last = statements.parse_month(month)
            closed = closing.close(session, first, last, now, walk=walk)
        except CoalitionError as exc:
            _refuse(exc, "--month")
        click.echo("Submitting the payments...", err=True)
        outcome = tasks.submit_payments()
        rendered = [statements.render(db.session(), row) for row in closed.statements]
        days = closed.days_settled
    if as_json:
        settled = [day.isoformat() for day in days]
        click.echo(
            json.dumps(
                {
                    "month": month,
                    "days_settled": settled,
                    "statements": rendered,
                    "payments": outcome,
                }
            )
        )
        return
    for line in _month_summary(month, len(days), rendered, outcome):
        click.echo(line)


def _month_summary(
    month: str, days: int, rendered: list[dict[str, Any]], outcome: dict[str, int]
) -> list[str]:
    lines = [
        f"{month}: {days} day{'' if days == 1 else 's'} settled,"
        f" {len(rendered)} statement{'' if len(rendered) == 1 else 's'}."
    ]
    for view in rendered[:SHOWN]:
        payment = view["payment"]
        paid = f" ({payment['kind']} {payment['status']})" if payment else ""
        lines.append(f"  {view['id']}  {view['summary']}{paid}")
    if len(rendered) > SHOWN:
        lines.append(f"  ... and {len(rendered) - SHOWN} more (--json lists them all).")
    if outcome:
        counts = ", ".join(f"{count} {state}" for state, count in sorted(Counter(outcome).items()))
        lines.append(f"Payments: {counts}.")
    if outcome.get("waiting"):
        lines.append(f"  They wait: {NOT_CONFIGURED}.")
    return lines


def init_app(app: Flask) -> None:
    for command in (settle, state):
        app.cli.add_command(command)
