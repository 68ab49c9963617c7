"""The database's own defence of the ledger (QUALITY L4): whatever the application does, entries
cannot be changed or removed, a balance cannot go negative without debt, and a redemption cannot
be reversed twice."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DatabaseError

from coalition.ledger import operations
from coalition.ledger.models import LotConsumption, Transaction
from tests import factories as f
from tests.factories import T0, TILL

TAMPERING = [
    "UPDATE transfers SET amount = amount + 1",
    "DELETE FROM transfers",
    "UPDATE transactions SET points = 0",
    "DELETE FROM transactions",
    "UPDATE lot_consumptions SET points = points + 1",
    "DELETE FROM lot_consumptions",
]


def _refused(session, statement, *params):
    with pytest.raises(DatabaseError) as refusal, session.begin_nested():
        session.execute(statement, *params)
    return str(refusal.value)


@pytest.fixture
def spent(session):
    shop, alice = f.merchant(session), f.member(session)
    f.purchase(session, alice, shop, 100)
    redemption = f.redeem(session, alice, shop, 60)
    return shop, alice, redemption


@pytest.mark.both_backends
@pytest.mark.parametrize("statement", TAMPERING)
def test_entries_cannot_be_updated_or_deleted(session, spent, statement):
    assert "immutable" in _refused(session, text(statement))


def test_entries_cannot_be_truncated_by_the_app_nor_by_the_tables_owner(session, spent):
    assert "permission denied" in _refused(session, text("TRUNCATE transfers CASCADE"))
    owner_first = text("SET LOCAL ROLE NONE; TRUNCATE transfers CASCADE")
    assert "immutable" in _refused(session, owner_first)


@pytest.mark.both_backends
def test_a_balance_cannot_go_negative_except_by_debt(session, spent):
    _, alice, _ = spent
    _refused(session, text("UPDATE accounts SET balance = -1 WHERE member_id = :m"), {"m": alice})
    _refused(
        session,
        text("UPDATE accounts SET balance = -5, debt = 4 WHERE member_id = :m"),
        {"m": alice},
    )
    with session.begin_nested() as allowed:
        session.execute(
            text("UPDATE accounts SET balance = -5, debt = 5 WHERE member_id = :m"), {"m": alice}
        )
        allowed.rollback()


@pytest.mark.both_backends
def test_a_second_reversal_is_refused_by_the_database(session, spent):
    shop, _, redemption = spent
    operations.reverse_redemption(
        session, redemption_id=redemption["transaction"]["id"], merchant_id=shop, actor=TILL, now=T0
    )
    transactions = Transaction.__table__
    first = (
        session.execute(select(transactions).where(transactions.c.type == "reversal"))
        .mappings()
        .one()
    )
    second = {k: v for k, v in first.items() if k != "id"} | {"public_id": "txn_forged"}

    _refused(session, insert(transactions).values(**second))
    consumptions = LotConsumption.__table__
    restore = (
        session.execute(select(consumptions).where(consumptions.c.kind == "restore"))
        .mappings()
        .first()
    )
    _refused(
        session, insert(consumptions).values(**{k: v for k, v in restore.items() if k != "id"})
    )
