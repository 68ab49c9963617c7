"""A merchant's provisional net position (SPEC 3.9, the portal's dashboard): today's, and the
month's so far. Days of the month that have their final run count with its position; the others
(today, and any day not settled yet) are priced now from the ledger, as a provisional run would
price them, without writing anything. Positive: the merchant owes the coalition."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import clock, economics, tenancy
from coalition.database import table
from settlement import business_days, engine
from settlement.models import SettlementPosition, SettlementRun
from settlement.runs import settled_between

runs = table(SettlementRun)
positions = table(SettlementPosition)

ZERO = Decimal(0)


@dataclass(frozen=True)
class NetPosition:
    today: Decimal
    month: Decimal
    currency: str


def _priced(session: Session, merchant_id: int, day: date, now: datetime) -> Decimal:
    """The merchant's net for `day` up to `now`, priced under that day's terms."""
    zone = business_days.zone()
    start = clock.end_of_business_date(day - timedelta(days=1), zone)
    end = min(clock.end_of_business_date(day, zone), now)
    if end <= start:
        return ZERO
    base, terms_of = economics.merchant_terms(session, day)
    engine.stage(session, start, end)
    try:
        totals = engine.read_totals(session, start, end)
    finally:
        engine.unstage(session)
    position = engine.price(totals, base, terms_of).positions.get(merchant_id)
    return ZERO if position is None else position.net


def net_position(session: Session, merchant_id: int, now: datetime) -> NetPosition:
    """Today's and the month-to-date provisional net of the merchant. Reads every merchant's
    movements of the day (a redemption elsewhere of its points is part of its position) as the
    system, and returns only this merchant's."""
    today = business_days.today(now)
    first = today.replace(day=1)
    with tenancy.acting_as(tenancy.SYSTEM, session):
        in_month = settled_between(first, today)
        settled = set(session.execute(select(runs.c.business_date).where(in_month)).scalars())
        nets = {
            day: Decimal(net)
            for day, net in session.execute(
                select(runs.c.business_date, positions.c.net)
                .join(positions, positions.c.run_id == runs.c.id)
                .where(in_month, positions.c.merchant_id == merchant_id)
            )
        }
        month = ZERO
        today_net = ZERO
        day = first
        while day <= today:
            net = nets.get(day, ZERO) if day in settled else _priced(session, merchant_id, day, now)
            month += net
            if day == today:
                today_net = net
            day += timedelta(days=1)
        currency = economics.coalition_terms(session, today).currency
    return NetPosition(today=today_net, month=month, currency=currency)
