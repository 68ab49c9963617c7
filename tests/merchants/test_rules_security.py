"""Row-level security on the earn rules' tables (QUALITY S2): a merchant's rules versions, its
members' stamps on its cards and its issuance counters are its own, even to a query that forgets
its `WHERE merchant_id = ...`; with no tenant set, nobody's."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from coalition import tenancy
from merchants import budgets, purchases, rules
from tests import factories as f
from tests.merchants.api.test_earn_rules import card_of

TABLES = ("earn_rules", "stamp_progress", "issuance_counters")


def _shop_with_everything(session: Session, name: str) -> int:
    shop = f.merchant(session, name)
    rules.put(
        session,
        merchant_id=shop,
        document={
            "base_rate": "1",
            "stamp_cards": [{"name": "Card", "category": "tea", "buy": 5, "reward": 10}],
        },
        actor_id=None,
        now=f.T0,
    )
    public_id = session.execute(
        text("SELECT public_id FROM merchants WHERE id = :id"), {"id": shop}
    ).scalar_one()
    budgets.set_cap(session, public_id, 1000, f.T0)
    purchases.record_purchase(
        session,
        merchant_id=shop,
        purchase={
            "member": card_of(session, f.member(session)),
            "amount": 500,
            "currency": "EUR",
            "external_id": f"{name}-1",
            "items": [{"sku": "t", "category": "tea", "amount": 500, "quantity": 2}],
        },
        actor=f.TILL,
        now=f.T0,
    )
    return shop


def test_a_merchant_sees_only_its_own_rules_stamps_and_counters(session: Session) -> None:
    alpha = _shop_with_everything(session, "Alpha")
    beta = _shop_with_everything(session, "Beta")

    with tenancy.acting_as(tenancy.Tenant.merchant(alpha), session):
        seen = {
            table: set(session.execute(text(f"SELECT DISTINCT merchant_id FROM {table}")).scalars())
            for table in TABLES
        }
    with tenancy.acting_as(tenancy.NOBODY, session):
        nobody = {
            table: session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in TABLES
        }

    assert seen == {table: {alpha} for table in TABLES}
    assert beta not in set().union(*seen.values())
    assert nobody == dict.fromkeys(TABLES, 0)
