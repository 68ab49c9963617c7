"""Alembic environment: migrate the database of the current Flask app (`coalition db upgrade`)."""

from alembic import context
from flask import current_app

migrate = current_app.extensions["migrate"]


def run_migrations_online() -> None:
    with migrate.db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # The owner migrates; the app's role (tenancy.APP_ROLE) may not create tables.
            connection.exec_driver_sql("RESET ROLE")
            connection.exec_driver_sql("SET statement_timeout = 0")  # a migration may take long
        context.configure(
            connection=connection,
            target_metadata=migrate.db.metadata,
            **migrate.configure_args,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
        if connection.dialect.name == "postgresql":
            # Acting as the owner now: never hand this connection to the app.
            connection.invalidate()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `coalition db upgrade`")
run_migrations_online()
