"""Alembic environment: migrate the database of the current Flask app (`coalition db upgrade`)."""

from alembic import context
from flask import current_app

migrate = current_app.extensions["migrate"]


def run_migrations_online() -> None:
    with migrate.db.engine.connect() as connection:
        dialect = connection.dialect.name
        if dialect == "postgresql":
            # The owner migrates; the app's role (tenancy.APP_ROLE) may not create tables.
            connection.exec_driver_sql("RESET ROLE")
            connection.exec_driver_sql("SET statement_timeout = 0")  # a migration may take long
        if dialect == "sqlite":
            # Batch mode rebuilds a table (copy, drop, rename) while other rows refer to it, so
            # foreign keys are checked once, after the migrations, as Alembic advises. The pragma
            # works only outside a transaction: it goes to the driver before anything begins one.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        context.configure(
            connection=connection,
            target_metadata=migrate.db.metadata,
            **migrate.configure_args,
        )
        with context.begin_transaction():
            context.run_migrations()
            if dialect == "sqlite":
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"the migrations broke foreign keys: {broken[:10]}")
        connection.commit()
        # Acting as the owner (PostgreSQL) or without foreign keys (SQLite) now: never hand this
        # connection to the app.
        connection.invalidate()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `coalition db upgrade`")
run_migrations_online()
