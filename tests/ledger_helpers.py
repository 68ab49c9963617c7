"""What the ledger's tests read back: a member's lots, the flows of points between accounts
by kind of consumption, and the outbox's events of a type."""

from __future__ import annotations

from sqlalchemy import func, select

from coalition.ledger.models import Account, Lot, LotConsumption
from coalition.outbox import OutboxEvent

accounts = Account.__table__
lots = Lot.__table__
consumptions = LotConsumption.__table__


def lots_of(session, member_id):
    return session.execute(
        select(
            lots.c.source,
            lots.c.points,
            lots.c.remaining,
            lots.c.issuer_account_id,
            lots.c.expires_at,
        )
        .join(accounts, accounts.c.id == lots.c.account_id)
        .where(accounts.c.member_id == member_id)
        .order_by(lots.c.id)
    ).all()


def flows_of(session):
    """(issuer account, redeemer account, kind) -> points, over all consumption records."""
    rows = session.execute(
        select(
            consumptions.c.issuer_account_id,
            consumptions.c.redeemer_account_id,
            consumptions.c.kind,
            func.sum(consumptions.c.points),
        ).group_by(
            consumptions.c.issuer_account_id,
            consumptions.c.redeemer_account_id,
            consumptions.c.kind,
        )
    ).all()
    return {(i, r, k): int(p) for i, r, k, p in rows}


def events(session, type_):
    return (
        session.execute(
            select(OutboxEvent.__table__.c.data).where(OutboxEvent.__table__.c.type == type_)
        )
        .scalars()
        .all()
    )
