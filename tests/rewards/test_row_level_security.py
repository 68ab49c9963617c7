"""The second wall (QUALITY S2) on the catalogue's tables: anyone may read a listing (the
catalogue is the coalition's), only its supplier may change it; an order is seen by its
supplier and by its member, by nobody else, even by a query without a WHERE clause."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from coalition import tenancy
from rewards import services
from tests import factories
from tests.rewards.helpers import member_with, reward


def _account(session: Session, member: int) -> int:
    return session.execute(
        text("SELECT id FROM accounts WHERE member_id = :m"), {"m": member}
    ).scalar_one()


def test_orders_are_their_suppliers_and_their_members_only(session: Session) -> None:
    alpha, beta = factories.merchant(session, "Alpha"), factories.merchant(session, "Beta")
    buyer, stranger = member_with(session, alpha, 500), member_with(session, alpha, 500)
    for supplier in (alpha, beta):
        services.place_order(
            session,
            member_id=buyer,
            reward_id=reward(session, supplier, points=10),
            quantity=1,
            now=factories.T0,
        )

    def seen(tenant: tenancy.Tenant) -> set[int]:
        with tenancy.acting_as(tenant, session):
            return set(session.execute(text("SELECT merchant_id FROM orders")).scalars())

    assert seen(tenancy.Tenant.merchant(alpha)) == {alpha}
    assert seen(tenancy.Tenant.member(_account(session, buyer))) == {alpha, beta}
    assert seen(tenancy.Tenant.member(_account(session, stranger))) == set()
    assert seen(tenancy.NOBODY) == set()


def test_anyone_reads_the_catalogue_and_only_its_supplier_changes_a_listing(
    session: Session,
) -> None:
    alpha, beta = factories.merchant(session, "Alpha"), factories.merchant(session, "Beta")
    reward(session, alpha, name="Alpha's")
    reward(session, None, name="The coalition's")

    with tenancy.acting_as(tenancy.Tenant.merchant(beta), session):
        names = set(session.execute(text("SELECT name FROM rewards")).scalars())
        assert names == {"Alpha's", "The coalition's"}
        changed = session.execute(text("UPDATE rewards SET points = 1"))
        assert changed.rowcount == 0  # none of them is Beta's
        savepoint = session.begin_nested()
        with pytest.raises(Exception, match="row-level security"):
            session.execute(
                text(
                    "INSERT INTO rewards (public_id, merchant_id, name, kind, points,"
                    " fulfilment_days, category, description, created_at, updated_at)"
                    " VALUES ('rwd_forged', :alpha, 'x', 'gift', 1, 1, 'x', '', now(), now())"
                ),
                {"alpha": alpha},
            )
        savepoint.rollback()
