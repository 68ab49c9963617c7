"""The second wall of tenant isolation (SPEC 3.2, QUALITY S2): PostgreSQL row-level security.

The application scopes every query by the caller's tenant itself; this module is the backstop for
the query that forgets. The app's database role (`coalition_app`) neither owns the tables nor
bypasses RLS, and every tenant table FORCEs its policies, which compare each row with the
transaction-local setting `coalition.tenant`:

- `merchant:<id>`: the rows of that merchant (plus, for a member-delegated token, the member's own
  transactions, through `coalition.member_account`);
- `operator` and `system` (jobs, the CLI, the OAuth server's own look-ups): every row;
- unset or empty: nothing at all.

The setting is transaction-local, so a pooled connection never carries one request's tenant into
the next. A context variable remembers the tenant of the current request or job, and each new
transaction starts with it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, scoped_session

APP_ROLE = "coalition_app"


@dataclass(frozen=True)
class Tenant:
    """Whose rows a transaction may see. `setting` is what RLS policies compare with."""

    setting: str
    member_account_id: int | None = None

    @classmethod
    def merchant(cls, merchant_id: int, member_account_id: int | None = None) -> Tenant:
        return cls(f"merchant:{merchant_id}", member_account_id)


NOBODY = Tenant("")
OPERATOR = Tenant("operator")
SYSTEM = Tenant("system")

_current: ContextVar[Tenant | None] = ContextVar("coalition_tenant", default=None)
# Used where nothing set a tenant: nobody in the web tier; the test suite sets SYSTEM so that
# factories and jobs run in new threads see what they write.
_fallback: list[Tenant] = [NOBODY]


def set_fallback(tenant: Tenant) -> None:
    _fallback[0] = tenant


def current() -> Tenant:
    found = _current.get()
    return _fallback[0] if found is None else found


def _apply(connection: Any, tenant: Tenant) -> None:
    member = "" if tenant.member_account_id is None else str(tenant.member_account_id)
    connection.exec_driver_sql(
        "SELECT set_config('coalition.tenant', %(t)s, true),"
        " set_config('coalition.member_account', %(m)s, true)",
        {"t": tenant.setting, "m": member},
    )


def begin_request() -> Token[Tenant | None]:
    """Every request starts as nobody; `end_request` restores what was before (a test's
    thread runs requests and factories in turn)."""
    return _current.set(NOBODY)


def end_request(token: Token[Tenant | None]) -> None:
    _current.reset(token)


def _apply_in_session(session: Session | scoped_session[Session], tenant: Tenant) -> None:
    if isinstance(session, scoped_session):
        session = session()
    if session.get_bind().dialect.name == "postgresql" and session.in_transaction():
        member = "" if tenant.member_account_id is None else str(tenant.member_account_id)
        session.execute(
            text(
                "SELECT set_config('coalition.tenant', :t, true),"
                " set_config('coalition.member_account', :m, true)"
            ),
            {"t": tenant.setting, "m": member},
        )


def enter(session: Session | scoped_session[Session] | None, tenant: Tenant) -> None:
    """From now on, this request or job acts as `tenant`, including in the transaction that
    `session` has open (if any)."""
    _current.set(tenant)
    if session is not None:
        _apply_in_session(session, tenant)


@contextmanager
def acting_as(
    tenant: Tenant, session: Session | scoped_session[Session] | None = None
) -> Iterator[None]:
    """Act as `tenant` inside the block, then as before."""
    previous = current()
    token = _current.set(tenant)
    if session is not None:
        _apply_in_session(session, tenant)
    try:
        yield
    finally:
        _current.reset(token)
        if session is not None:
            _apply_in_session(session, previous)


def prepare_engine(engine: Engine, role: str) -> None:
    """PostgreSQL: act as the app's role on every new connection (when it exists: before the
    first migration it does not)."""
    if engine.dialect.name != "postgresql" or not role:
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if cursor.fetchone() is not None:
                cursor.execute(f'SET ROLE "{role}"')
        dbapi_connection.commit()


@event.listens_for(Session, "after_begin")
def _on_session_begin(_session: Session, _transaction: Any, connection: Any) -> None:
    """Each session transaction (or, in tests, each savepoint a request joins) starts as the
    current tenant."""
    if connection.dialect.name == "postgresql":
        _apply(connection, current())
