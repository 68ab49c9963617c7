"""Database plumbing shared by every package: column types that behave the same on PostgreSQL
and SQLite, and the connection set-up each backend needs."""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import JSON, BigInteger, DateTime, Integer, Select, Table, event, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

# Integer primary keys: BIGINT on PostgreSQL; SQLite only auto-increments "INTEGER PRIMARY KEY".
BigId = BigInteger().with_variant(Integer(), "sqlite")

Json = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out. PostgreSQL keeps `timestamptz`; SQLite keeps naive UTC
    text, which sorts and compares correctly because every value is UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def table(model: type[Any]) -> Table:
    """A mapped class's Table, typed as one (SQLAlchemy types `__table__` as a FromClause).
    Hot paths use SQLAlchemy Core on these tables rather than the ORM."""
    return cast(Table, model.__table__)


def insert_unless_present(
    session: Session, target: Table, key: list[str], key_where: Any = None
) -> Any:
    """`INSERT … ON CONFLICT (key) DO NOTHING` in the session's dialect (both backends have
    it): a row that another transaction inserted first is left alone, without an error.
    `key_where` names a partial unique index's condition."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(target).on_conflict_do_nothing(index_elements=key, index_where=key_where)


# Up to this many rows go as VALUES (psycopg dumps a few scalars faster than anything else);
# more go as one JSON document.
FEW_ROWS = 10
_insert_sql: dict[tuple[str, tuple[str, ...], int], str] = {}


def insert_rows(session: Session, target: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert `rows` (each with the same columns) and return their new ids in the order of
    `rows`. On PostgreSQL it is one statement whatever the number of rows: a few go as VALUES,
    more as one JSON document that PostgreSQL reads back as typed rows (`INSERT … SELECT FROM
    jsonb_to_recordset(…) WITH ORDINALITY`), since a thousand rows of VALUES would be fourteen
    thousand parameters that the driver parses anew each time, and one array per column costs
    the driver more than the C JSON encoder costs. The ids come from the table's sequence, taken
    in the rows' order, so sorting them gives `rows`' order. SQLite: SQLAlchemy's multi-row
    insert, which returns the ids in order itself."""
    if not rows:
        return []
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        result = connection.execute(
            insert(target).returning(target.c.id, sort_by_parameter_order=True), rows
        )
        return [row.id for row in result]
    names = tuple(rows[0])
    columns = [target.c[name] for name in names]
    processors = [column.type._cached_bind_processor(connection.dialect) for column in columns]
    few = len(rows) <= FEW_ROWS
    key = (target.name, names, len(rows) if few else 0)
    statement = _insert_sql.get(key)
    if statement is None:
        statement = _insert_sql[key] = _insert_statement(target, columns, len(rows), few)
    if few:
        params = tuple(
            process(row[name]) if process else row[name]
            for row in rows
            for name, process in zip(names, processors, strict=True)
        )
    else:
        # JSON columns go as themselves, nested in the rows' JSON; the rest as bound.
        plain = [
            None if isinstance(column.type, JSON) else process
            for column, process in zip(columns, processors, strict=True)
        ]
        document = [
            {
                name: process(row[name]) if process else row[name]
                for name, process in zip(names, plain, strict=True)
            }
            for row in rows
        ]
        params = (json.dumps(document, default=_json_value),)
    return sorted(row[0] for row in driver_cursor(connection, statement, params).fetchall())


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} in a bulk insert")


def _insert_statement(target: Table, columns: list[Any], count: int, few: bool) -> str:
    listed = ", ".join(f'"{column.name}"' for column in columns)
    if few:
        one = "(" + ", ".join(["%s"] * len(columns)) + ")"
        values = ", ".join([one] * count)
        return f'INSERT INTO "{target.name}" ({listed}) VALUES {values} RETURNING id'
    # One JSON parameter holds every row; PostgreSQL reads it back in order, typed per column.
    typed = ", ".join(
        f'"{column.name}" {column.type.compile(dialect=postgresql.dialect())}' for column in columns
    )
    return (
        f'INSERT INTO "{target.name}" ({listed}) SELECT {listed}'
        f" FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS ({typed})) WITH ORDINALITY"
        f" AS given({listed}, n) ORDER BY n RETURNING id"
    )


def driver_cursor(connection: Connection, statement: str, params: Any = None) -> Any:
    """PostgreSQL: `statement` sent through the connection's own psycopg cursor, in the
    session's transaction, without SQLAlchemy's execution and result layers (half of a short
    statement's CPU: docs/benchmarks.md, "Issue 11: the last levers"). An error is handled as
    SQLAlchemy would have: wrapped in its exception (IntegrityError...), and a connection found
    dead is invalidated. No `before_cursor_execute` event is sent for these statements."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(statement, params)
    except Exception as error:
        connection._handle_dbapi_exception(error, statement, params, cursor, None)
    return cursor


def _utc(value: Any) -> Any:
    # What UTCDateTime gives back: every timestamp of the schema is UTC.
    return value.astimezone(UTC) if isinstance(value, datetime) else value


class Hot:
    """A Core statement of a hot path, built once with `bindparam`s for whatever changes per
    call. SQLite runs it as any statement. PostgreSQL sends the SQL compiled once through
    `driver_cursor`: no statement built, no cache key, no result layer on each call. Rows are
    named tuples (`row.name` and `row[i]`, as SQLAlchemy's); timestamps come back in UTC as
    UTCDateTime gives them, JSON as psycopg reads it, the same values as the types' own."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._compiled: tuple[str, dict[str, Any], Any] | None = None

    def rows(self, connection: Connection, params: Mapping[str, Any]) -> Sequence[Any]:
        if connection.dialect.name != "postgresql":
            return connection.execute(self.statement, dict(params)).all()
        if self._compiled is None:
            compiled = self.statement.compile(dialect=connection.dialect)
            names = [name for name, *_ in compiled._result_columns or ()]
            made = namedtuple("Row", names, rename=True)  # type: ignore[misc]
            self._compiled = compiled.string, dict(compiled.params), made
        statement, defaults, row = self._compiled
        cursor = driver_cursor(connection, statement, {**defaults, **params})
        return [row._make(map(_utc, values)) for values in cursor.fetchall()]


def engine_options(url: str, statement_timeout_ms: int = 0) -> dict[str, Any]:
    """PostgreSQL: a statement timeout bounds every query the app sends (QUALITY S5). No ping
    before each checkout (a round trip on every request): a connection that died with its
    server fails the one request that used it, and SQLAlchemy then replaces the whole pool."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {
        "pool_size": 10,
        "max_overflow": 20,
        "connect_args": {"options": f"-c statement_timeout={statement_timeout_ms}"},
    }


def prepare_engine(engine: Engine) -> None:
    """SQLite: WAL for concurrent readers, foreign keys on, and BEGIN IMMEDIATE so a write
    transaction takes the write lock up front instead of failing on upgrade (the driver's own
    transaction handling is switched off so that SAVEPOINTs work)."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
