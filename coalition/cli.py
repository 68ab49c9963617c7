"""The `coalition` command: the operator's CLI (SPEC 3.5), built on Flask's (`coalition db
upgrade`, `coalition routes` ...) without Flask's development server and shell, and with only
the migration commands an operator runs. Developers author migrations with Flask's own CLI:
`flask --app coalition db revision --autogenerate -m "..."`."""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
import tempfile
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, routes_command, with_appcontext
from sqlalchemy.exc import OperationalError

from coalition.extensions import db

log = logging.getLogger(__name__)


def _create_app() -> Flask:
    from coalition import create_app

    return create_app()


# Of Flask-Migrate's `db` commands, those an operator runs; the rest (init, revision, migrate,
# downgrade, stamp ...) author or rewrite history, and are for developers through `flask`.
OPERATOR_DB_COMMANDS = ("upgrade", "current")
# FlaskGroup's own options, which choose another app, debug mode or a .env file: not ours.
FLASK_OPTIONS = ("app", "debug", "env_file")


class CoalitionGroup(FlaskGroup):
    """Flask's CLI group as the operator's: this app's commands and `routes`, Coalition's
    version, and a `db` group of `OPERATOR_DB_COMMANDS`."""

    def __init__(self) -> None:
        super().__init__(
            create_app=_create_app,
            add_default_commands=False,
            add_version_option=False,
            load_dotenv=False,
            help="Coalition: a coalition loyalty platform.",
        )
        self.params = [p for p in self.params if p.name not in FLASK_OPTIONS]
        self.add_command(routes_command)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if name == "db" and isinstance(command, click.Group):
            assert command.callback is not None
            return click.Group(
                "db",
                commands={n: _plain_errors(command.commands[n]) for n in OPERATOR_DB_COMMANDS},
                # The migrations are the package's own: no other directory or env.py arguments.
                callback=functools.partial(command.callback, directory=None, x_arg=()),
                short_help="Build or migrate the database schema.",
                help="The database schema: `upgrade` builds or migrates it (PostgreSQL or"
                " SQLite), `current` names the revision it is at.",
            )
        return command


def _plain_errors(command: click.Command) -> click.Command:
    """`command`, answering a database it cannot reach with one line that says what to do,
    rather than a trace."""
    assert command.callback is not None
    callback = command.callback

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except OperationalError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[-1]
            hint = ""
            if "does not exist" in reason:
                hint = (
                    "; on PostgreSQL, create the database first"
                    " (e.g. createdb -h 127.0.0.1 -U postgres coalition)"
                )
            raise click.ClickException(f"cannot reach the database: {reason}{hint}") from exc

    return click.Command(
        command.name,
        callback=run,
        params=command.params,
        help=command.help,
        short_help=command.short_help,
    )


main = click.version_option(
    package_name="coalition", prog_name="coalition", message="%(prog)s %(version)s"
)(CoalitionGroup())


@click.command("verify-ledger")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@with_appcontext
def verify_ledger(as_json: bool) -> None:
    """Check every ledger invariant; exit 1 and name what is wrong if any fails."""
    from coalition.ledger.verify import CHECKS, verify

    violations = verify(db.session())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": not violations,
                    "checked": [c.name for c in CHECKS],
                    "violations": [
                        {"check": v.check, "rule": v.rule, "rows": v.rows} for v in violations
                    ],
                },
                default=str,
            )
        )
    else:
        for check in CHECKS:
            broken = next((v for v in violations if v.check == check.name), None)
            click.echo(f"{'FAIL' if broken else 'ok  '} {check.name}: {check.rule}")
            for row in broken.rows if broken else []:
                click.echo(f"       {json.dumps(row, default=str)}")
    if violations:
        sys.exit(1)


@click.command("worker")
@click.option("--no-cron", is_flag=True, help="Do not start the `rq cron` scheduler beside it.")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option(
    "--webhook-workers",
    default=4,
    show_default=True,
    type=click.IntRange(min=0),
    help="Processes delivering webhooks (the `webhooks` queue); 0: this worker delivers them.",
)
@with_appcontext
def worker(no_cron: bool, burst: bool, webhook_workers: int) -> None:
    """Run an RQ worker on every queue (with RQ's scheduler for delayed retries) and, unless
    --no-cron, `rq cron` with the schedule in coalition/schedule.py. Unless --burst, also the
    webhooks' pump and --webhook-workers processes for their queue (then this worker leaves
    that queue to them). Needs REDIS_URL."""
    from coalition.jobs import QUEUES, Worker, redis_connection
    from webhooks.cli import Children

    url = current_app.config["REDIS_URL"]
    if not url:
        raise click.ClickException(
            "REDIS_URL is not set: without Redis, `coalition serve` runs the jobs"
        )
    _say_if_payments_wait(current_app)
    scheduler = None
    if not no_cron and not burst:
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "rq.cli", "cron", "coalition.schedule", "--url", url]
        )
    queues = list(QUEUES)
    webhooks = None
    if not burst:
        webhooks = Children(webhook_workers).start()
        if webhook_workers:
            queues.remove("webhooks")
    try:
        Worker(queues, connection=redis_connection(current_app)).work(
            burst=burst, with_scheduler=True
        )
    finally:
        if webhooks is not None:
            webhooks.stop()
        if scheduler is not None:
            scheduler.terminate()
            scheduler.wait(timeout=10)


def _say_if_payments_wait(app: Flask) -> None:
    """One line at start-up when payments cannot be made: without a Stripe key they wait, and
    nothing is sent to Stripe (decision 84)."""
    if not app.config["STRIPE_API_KEY"]:
        log.warning(
            "Stripe is not configured (STRIPE_API_KEY is unset): payments wait as `created`"
            " and nothing is sent to Stripe until it is set"
        )


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--workers", default=None, type=int, help="gunicorn workers (default: config/gunicorn.py)."
)
@with_appcontext
def serve(host: str, port: int, workers: int | None) -> None:
    """Serve the platform with gunicorn. On the embedded default (no REDIS_URL) it also runs
    the scheduled jobs, in one of its workers."""
    from gunicorn.app.base import BaseApplication

    import config.gunicorn as defaults
    from coalition.jobs import InProcessScheduler

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    options = {k: v for k, v in vars(defaults).items() if not k.startswith("_")}
    options["bind"] = f"{host}:{port}"
    if workers:
        options["workers"] = workers
    _say_if_payments_wait(app)
    # Nothing crosses gunicorn's fork holding a database connection or a thread (decision 83):
    # the master only forks and watches its workers; each worker builds its own app.
    db.engine.dispose()
    schedule_lock = None
    if not app.config["REDIS_URL"]:
        descriptor, schedule_lock = tempfile.mkstemp(prefix="coalition-schedule-", suffix=".lock")
        os.close(descriptor)

    def post_worker_init(worker: Any) -> None:
        if schedule_lock is not None:
            worker.coalition_schedule = InProcessScheduler(worker.wsgi, schedule_lock)
            worker.coalition_schedule.start()

    def worker_exit(_server: Any, worker: Any) -> None:
        schedule = getattr(worker, "coalition_schedule", None)
        if schedule is not None:
            schedule.close()

    def on_exit(_server: Any) -> None:
        if schedule_lock is not None:
            os.unlink(schedule_lock)

    class Server(BaseApplication):
        def load_config(self) -> None:
            hooks = {
                "post_worker_init": post_worker_init,
                "worker_exit": worker_exit,
                "on_exit": on_exit,
            }
            for key, value in {**options, **hooks}.items():
                if key in self.cfg.settings:  # config/gunicorn.py's own imports are not settings
                    self.cfg.set(key, value)

        def load(self) -> Flask:
            from coalition import create_app

            return create_app()

    Server().run()


def init_app(app: Flask) -> None:
    from coalition.demo import demo
    from webhooks.cli import webhooks_group

    for command in (verify_ledger, worker, serve, demo, webhooks_group):
        app.cli.add_command(command)
