"""`coalition ops create-staff EMAIL --role ROLE`: a staff account for the console. The
password is asked (twice), or with `--print-password` made and printed this once. The command
joins the `ops` group in the composition root (`create_app`)."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from coalition import clock, tenancy
from coalition.errors import CoalitionError
from coalition.extensions import db
from coalition.staff import services
from coalition.staff.models import ROLES


@click.command("create-staff")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the staff may do.")
@click.option(
    "--print-password",
    is_flag=True,
    help="Make a password and print it this once, rather than asking for one.",
)
@with_appcontext
def create_staff_command(email: str, role: str, print_password: bool) -> None:
    """Create a staff account of the operator's console (/ops) for EMAIL."""
    if print_password:
        password = services.generate_password()
    else:
        password = click.prompt(
            f"Password (at least {services.MIN_PASSWORD} characters)",
            hide_input=True,
            confirmation_prompt=True,
        )
    session = db.session()
    tenancy.enter(session, tenancy.SYSTEM)  # a command acts for the whole coalition
    try:
        made = services.create_staff(
            session, email=email, role=role, password=password, now=clock.utcnow()
        )
    except CoalitionError as exc:
        session.rollback()
        raise click.ClickException(exc.detail) from exc
    session.commit()
    click.echo(f"staff: {made.email} ({made.role})")
    if print_password:
        click.echo(f"password: {password}")
        click.echo("Keep the password now: it is stored only as a hash and never shown again.")
    if made.role in services.TOTP_REQUIRED_ROLES:
        click.echo("In production, the first sign-in asks to set up a second factor (TOTP).")
