"""Settlement's commands (SPEC 3.5): `coalition settle --date D` and `coalition statements
--month M`. Both do their work in this process and print the result as JSON."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from coalition import clock, tenancy
from coalition.extensions import db
from settlement import payments, runs, statements

ONE_DAY = timedelta(days=1)


@click.command("settle")
@click.option("--date", "day", required=True, type=click.DateTime(["%Y-%m-%d"]))
@with_appcontext
def settle(day: datetime) -> None:
    """Settle one business day (a closed day once and for all; today provisionally)."""
    with tenancy.acting_as(tenancy.SYSTEM):
        run = runs.settle(db.session(), day.date(), clock.utcnow())
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


@click.command("statements")
@click.option("--month", required=True, help="The month to state, e.g. 2026-10.")
@with_appcontext
def state(month: str) -> None:
    """Settle any day of the month not yet settled, state the month for every merchant, and
    submit the payments."""
    now = clock.utcnow()
    with tenancy.acting_as(tenancy.SYSTEM):
        first, last = statements.parse_month(month)
        yesterday = clock.business_date(now, current_app.config["COALITION_TIMEZONE"]) - ONE_DAY
        for day in runs.unsettled_days(db.session(), first, min(last, yesterday)):
            runs.settle(db.session(), day, now)
        rows = statements.issue_month(db.session(), month, now)
        db.session.commit()
        rendered = [statements.render(db.session(), row) for row in rows]
        click.echo(json.dumps({"month": month, "statements": rendered}))
        payments.submit_payments()


def init_app(app: Flask) -> None:
    for command in (settle, state):
        app.cli.add_command(command)
