"""The second wall (QUALITY S2): PostgreSQL row-level security on tenant tables. Even a query
that forgets its `WHERE merchant_id = ...` sees only its own tenant's rows, and a query with no
tenant set sees nothing at all."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from coalition import idempotency, tenancy
from coalition.extensions import db
from coalition.ledger import holds
from coalition.members import attributes
from coalition.privacy import services as privacy
from coalition.segments import services as segments
from settlement import disputes, payments, runs
from tests import factories

TENANT_TABLES = (
    "transactions",
    "holds",
    "outbox_events",
    "idempotency_keys",
    "oauth_clients",
    "oauth_client_secrets",
    "oauth_tokens",
    "oauth_authorization_codes",
    "statements",
    "payment_instructions",
    "settlement_positions",
    "member_consents",
    "member_attributes",
    "segments",
    "segment_members",
    "statement_disputes",
)


def _count(session: Session, table: str) -> int:
    return int(session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.fixture
def two_shops(session: Session) -> tuple[int, int]:
    """Two merchants, each with a client, a token, a purchase, a hold, and a statement with a
    dispute."""
    shops = []
    for name in ("Alpha", "Beta"):
        shop = factories.merchant(session, name)
        factories.merchant_headers(session, shop)
        member = factories.member(session)
        factories.purchase(session, member, shop, 50)
        privacy.set_consents(
            session, member, {"email": True, "profiling": True}, source=privacy.ME, now=factories.T0
        )
        attributes.set_attributes(
            session, member, {"household_size": 2}, now=factories.T0, today=factories.T0.date()
        )
        segments.create(session, segments.Owner(shop), name=name, definition={}, now=factories.T0)
        holds.place_hold(session, member_id=member, merchant_id=shop, points=10, now=factories.T0)
        idempotency.execute(
            session,
            scope=tenancy.Tenant.merchant(shop).setting,
            key="same-key",
            request_fingerprint="f",
            operation=lambda: (201, {}),
            now=factories.T0,
        )
        stated = factories.statement(session, shop)
        payments.instruct(session, stated)
        disputes.raise_dispute(
            session, shop, stated.public_id, 1, "Not our count", factories.T0 + timedelta(days=1)
        )
        shops.append(shop)
    # Both shops' purchases settled: a position each.
    runs.settle(session, factories.T0.date(), factories.T0 + timedelta(days=1))
    return shops[0], shops[1]


def test_the_app_role_neither_owns_the_tables_nor_bypasses_security(session: Session) -> None:
    role = session.execute(
        text(
            "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
    ).one()
    assert (role.current_user, role.rolsuper, role.rolbypassrls) == (tenancy.APP_ROLE, False, False)
    tables = session.execute(
        text(
            "SELECT relname, relrowsecurity, relforcerowsecurity,"
            " pg_get_userbyid(relowner) AS owner"
            " FROM pg_class WHERE relname = ANY(:names)"
        ),
        {"names": list(TENANT_TABLES)},
    ).all()
    assert {t.relname for t in tables} == set(TENANT_TABLES)
    for found in tables:
        assert found.relrowsecurity and found.relforcerowsecurity, found.relname
        assert found.owner != tenancy.APP_ROLE


def test_a_query_with_no_tenant_set_sees_no_tenant_row(
    session: Session, two_shops: tuple[int, int]
) -> None:
    with tenancy.acting_as(tenancy.SYSTEM, session):
        everything = {table: _count(session, table) for table in TENANT_TABLES}
    with tenancy.acting_as(tenancy.NOBODY, session):
        nothing = {table: _count(session, table) for table in TENANT_TABLES}

    assert all(everything[t] > 0 for t in TENANT_TABLES if t != "oauth_authorization_codes")
    assert nothing == dict.fromkeys(TENANT_TABLES, 0)


def test_a_merchant_sees_only_its_own_rows_even_without_a_where_clause(
    session: Session, two_shops: tuple[int, int]
) -> None:
    alpha, beta = two_shops
    with tenancy.acting_as(tenancy.Tenant.merchant(alpha), session):
        merchants_seen = {
            table: set(session.execute(text(f"SELECT DISTINCT merchant_id FROM {table}")).scalars())
            for table in (
                "transactions",
                "holds",
                "outbox_events",
                "oauth_clients",
                "oauth_tokens",
                "statements",
                "payment_instructions",
                "settlement_positions",
                "segments",
                "statement_disputes",
            )
        }
        keys = set(session.execute(text("SELECT scope FROM idempotency_keys")).scalars())
    assert merchants_seen == {table: {alpha} for table in merchants_seen}
    assert beta not in set().union(*merchants_seen.values())
    assert keys == {f"merchant:{alpha}"}


def test_a_merchant_cannot_write_a_row_for_another_merchant(
    session: Session, two_shops: tuple[int, int]
) -> None:
    alpha, beta = two_shops
    with tenancy.acting_as(tenancy.Tenant.merchant(alpha), session):
        savepoint = session.begin_nested()
        with pytest.raises(Exception, match="row-level security"):
            session.execute(
                text(
                    "INSERT INTO outbox_events (public_id, type, data, merchant_id, created_at)"
                    " VALUES ('evt_forged', 'purchase.created', '{}', :beta, now())"
                ),
                {"beta": beta},
            )
        savepoint.rollback()


def test_a_member_token_sees_the_members_own_transactions_at_every_merchant(
    session: Session,
) -> None:
    alpha, beta = factories.merchant(session, "Alpha"), factories.merchant(session, "Beta")
    member, stranger = factories.member(session), factories.member(session)
    factories.purchase(session, member, alpha, 10)
    factories.purchase(session, member, beta, 20)
    factories.purchase(session, stranger, beta, 30)
    account = session.execute(
        text("SELECT id FROM accounts WHERE member_id = :m"), {"m": member}
    ).scalar_one()

    with tenancy.acting_as(tenancy.Tenant.merchant(alpha, account), session):
        seen = session.execute(text("SELECT points FROM transactions ORDER BY points")).scalars()
        assert list(seen) == [10, 20]


def test_consents_are_seen_by_their_member_and_by_merchants_where_it_earned_only(
    session: Session,
) -> None:
    alpha, beta = factories.merchant(session, "Alpha"), factories.merchant(session, "Beta")
    shopper, spender, stranger = (factories.member(session) for _ in range(3))
    factories.purchase(session, shopper, alpha, 10)
    factories.purchase(session, spender, beta, 10)
    factories.redeem(session, spender, alpha, 5)  # spending at Alpha is not shopping there
    for member in (shopper, spender, stranger):
        privacy.set_consents(session, member, {"sms": True}, source=privacy.ME, now=factories.T0)
    account = session.execute(
        text("SELECT id FROM accounts WHERE member_id = :m"), {"m": shopper}
    ).scalar_one()

    def seen(tenant: tenancy.Tenant) -> set[int]:
        with tenancy.acting_as(tenant, session):
            return set(session.execute(text("SELECT member_id FROM member_consents")).scalars())

    assert seen(tenancy.Tenant.merchant(alpha)) == {shopper}
    assert seen(tenancy.Tenant.merchant(beta)) == {spender}
    assert seen(tenancy.Tenant.member(account)) == {shopper}
    with tenancy.acting_as(tenancy.Tenant.member(account), session):
        savepoint = session.begin_nested()
        with pytest.raises(Exception, match="row-level security"):
            session.execute(
                text(
                    "INSERT INTO member_consents (member_id, purpose, granted, text_version,"
                    " source, created_at) VALUES (:m, 'email', true, 'v', 'me', now())"
                ),
                {"m": stranger},
            )
        savepoint.rollback()
    # A merchant reads its audience's consents but never writes one.
    with tenancy.acting_as(tenancy.Tenant.merchant(alpha), session):
        savepoint = session.begin_nested()
        with pytest.raises(Exception, match="row-level security"):
            session.execute(
                text(
                    "INSERT INTO member_consents (member_id, purpose, granted, text_version,"
                    " source, created_at) VALUES (:m, 'email', true, 'v', 'me', now())"
                ),
                {"m": shopper},
            )
        savepoint.rollback()


def test_a_statement_timeout_bounds_every_query(make_app: Any) -> None:
    """QUALITY S5: a query that runs too long is cancelled, not left holding a connection."""
    quick = make_app(DATABASE_STATEMENT_TIMEOUT_MS="200")
    with quick.app_context():
        assert db.session.execute(text("SHOW statement_timeout")).scalar_one() == "200ms"
        with pytest.raises(OperationalError, match="statement timeout"):
            db.session.execute(text("SELECT pg_sleep(2)"))
        db.session.rollback()
