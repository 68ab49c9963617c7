"""The second wall of tenant isolation (SPEC 3.2, QUALITY S2): PostgreSQL row-level security.

The application scopes every query by the caller's tenant itself; this module is the backstop for
the query that forgets. The app's database role (`coalition_app`) neither owns the tables nor
bypasses RLS, and every tenant table FORCEs its policies, which compare each row with the
transaction-local setting `coalition.tenant`:

- `merchant:<id>`: the rows of that merchant (plus, for a member-delegated token, the member's own
  transactions, through `coalition.member_account`);
- `member:<account id>`: a member signed in to its own site, its own transactions only (through
  `coalition.member_account`);
- `operator` and `system` (jobs, the CLI, the OAuth server's own look-ups): every row;
- unset or empty: nothing at all.

The setting is transaction-local, so a pooled connection never carries one request's tenant into
the next. A context variable remembers the tenant of the current request or job, and each new
transaction starts with it: one statement that sets the tenant and, for a tenant that a bearer
token gives (`token`), confirms in the same round trip that the token is still live (neither it
nor its client revoked, the client not disabled), on both databases. A token revoked meanwhile
raises `TokenNotLive` there, so a request whose token was checked from a cache never runs on a
token revoked before the request's transaction began."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, SessionTransaction, scoped_session

from coalition.database import driver_cursor
from coalition.errors import CoalitionError

APP_ROLE = "coalition_app"


class TokenNotLive(CoalitionError):
    status, code, title = 401, "invalid_token", "Invalid or missing access token"


@dataclass(frozen=True)
class Tenant:
    """Whose rows a transaction may see. `setting` is what RLS policies compare with."""

    setting: str
    member_account_id: int | None = None
    # The OAuth token (its row id) this tenant comes from, confirmed live with each setting.
    token: int | None = None

    @classmethod
    def merchant(
        cls, merchant_id: int, member_account_id: int | None = None, token: int | None = None
    ) -> Tenant:
        return cls(f"merchant:{merchant_id}", member_account_id, token)

    @classmethod
    def member(cls, member_account_id: int) -> Tenant:
        """A member on its own site (`/me`): its own transactions at every merchant, and no
        merchant's rows."""
        return cls(f"member:{member_account_id}", member_account_id)


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


# A token is live while neither it nor its client is revoked and the client is not disabled (its
# merchant suspended); its expiry never changes, so callers check that themselves. PostgreSQL
# asks `coalition_token_live` (migration 20261128_token_live), which reads as the system tenant.
_SET = (
    "SELECT set_config('coalition.tenant', %(t)s, true),"
    " set_config('coalition.member_account', %(m)s, true)"
)
_SET_AND_CHECK = _SET + ", coalition_token_live(%(k)s)"
_CHECK_SQLITE = (
    "SELECT 1 FROM oauth_tokens t JOIN oauth_clients c ON c.id = t.client_id"
    " WHERE t.id = ? AND t.revoked_at IS NULL AND c.revoked_at IS NULL AND NOT c.disabled"
)


def _apply(connection: Any, tenant: Tenant) -> None:
    """Make `tenant` the transaction's: on PostgreSQL, one statement sets it (and confirms its
    token); SQLite has no row-level security, so only a token is confirmed there."""
    if connection.dialect.name != "postgresql":
        if tenant.token is not None:
            live = connection.exec_driver_sql(_CHECK_SQLITE, (tenant.token,)).first()
            if live is None:
                raise TokenNotLive("the access token is unknown, expired or revoked")
        return
    member = "" if tenant.member_account_id is None else str(tenant.member_account_id)
    values = {"t": tenant.setting, "m": member}
    if tenant.token is None:
        driver_cursor(connection, _SET, values)
        return
    row = driver_cursor(connection, _SET_AND_CHECK, {**values, "k": tenant.token}).fetchone()
    if not row[2]:
        raise TokenNotLive("the access token is unknown, expired or revoked")


def begin_request() -> Token[Tenant | None]:
    """Every request starts as nobody; `end_request` restores what was before (a test's
    thread runs requests and factories in turn)."""
    return _current.set(NOBODY)


def end_request(token: Token[Tenant | None]) -> None:
    _current.reset(token)


def _apply_in_session(session: Session | scoped_session[Session], tenant: Tenant) -> None:
    if isinstance(session, scoped_session):
        session = session()
    if session.in_transaction():
        _apply(session.connection(), tenant)


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
def _on_session_begin(_session: Session, transaction: SessionTransaction, connection: Any) -> None:
    """Each session transaction (in tests, the savepoint a request joins) starts as the current
    tenant. A nested one (a savepoint) starts where its parent is, so it needs no statement."""
    if not transaction.nested:
        _apply(connection, current())
