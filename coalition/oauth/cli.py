"""`coalition ops …`: the operator's commands for OAuth clients (SPEC 3.5)."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from coalition import clock, tenancy
from coalition.extensions import db
from coalition.oauth import scopes
from coalition.oauth.clients import create_client

ops = AppGroup("ops", help="The operator's commands.")

MAX_NAME = 200


@ops.command("create-client")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the new client as JSON.")
def create_client_command(name: str, as_json: bool) -> None:
    """Create an operator client called NAME. Its secret is shown this once."""
    if not name.strip() or len(name) > MAX_NAME:
        raise click.BadParameter(f"give a name of 1 to {MAX_NAME} characters", param_hint="NAME")
    session = db.session()
    tenancy.enter(session, tenancy.SYSTEM)  # a command acts for the whole coalition
    created = create_client(
        session,
        name=name.strip(),
        merchant_id=None,
        scopes=scopes.OPERATOR_SCOPES,
        now=clock.utcnow(),
    )
    session.commit()
    if as_json:
        click.echo(
            json.dumps(
                {"client_id": created["client_id"], "client_secret": created["client_secret"]}
            )
        )
    else:
        click.echo(f"client_id:     {created['client_id']}")
        click.echo(f"client_secret: {created['client_secret']}")
        click.echo("Keep the secret now: it is stored only as a digest and never shown again.")
