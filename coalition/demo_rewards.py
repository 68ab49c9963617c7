"""The demo's rewards catalogue (issue 15): listings of the operator and of four partners, and
orders placed, fulfilled, accepted at a till, cancelled by their members and cancelled by the
night for want of fulfilment, day by day inside the demo's loop, so at its end the catalogue has
orders in every state. Each order is a redemption at its supplier made on its day."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import economics
from coalition.database import table
from coalition.errors import CoalitionError
from coalition.ledger.models import Account
from coalition.members.models import Member
from coalition.members.services import find_member
from rewards import services as rewards

# (supplier: the index of a demo merchant by name, None for the operator), listing.
CATALOGUE: tuple[tuple[str | None, dict[str, Any]], ...] = (
    (
        None,
        {
            "name": "Coalition tote bag",
            "kind": "gift",
            "points": 150,
            "stock": 200,
            "fulfilment_days": 14,
            "category": "gifts",
            "description": "Organic cotton, sent by post.",
        },
    ),
    (
        "FreshCart",
        {
            "name": "€5 grocery voucher",
            "kind": "voucher",
            "points": 250,
            "cost": 400,
            "stock": None,
            "fulfilment_days": 60,
            "category": "vouchers",
            "description": "Show the code at any FreshCart till.",
        },
    ),
    (
        "Kino",
        {
            "name": "Two cinema tickets",
            "kind": "experience",
            "points": 400,
            "cost": 1400,
            "stock": 50,
            "fulfilment_days": 21,
            "category": "experiences",
            "description": "Any evening show; the tickets are sent by email.",
        },
    ),
    (
        "Seitenweise",
        {
            "name": "Hardback of the month",
            "kind": "gift",
            "points": 600,
            "stock": 10,
            "fulfilment_days": 7,
            "category": "books",
            "description": "Collected at the shop.",
        },
    ),
    (
        "Bistro",
        {
            "name": "Dinner for two",
            "kind": "experience",
            "points": 900,
            "stock": 5,
            # Bistro Basilico books its dinners late: the night cancels what waits too long.
            "fulfilment_days": 3,
            "category": "dining",
            "description": "Three courses with wine, on a weekday.",
        },
    ),
)
# Suppliers that never get round to fulfilling: their orders show the night's cancel.
SLOW = ("Bistro",)


@dataclass
class _Placed:
    id: str
    kind: str
    supplier: int | None
    supplier_name: str | None
    member_account_id: int
    voucher_code: str | None
    at: datetime


@dataclass
class DemoRewards:
    """The catalogue of one demo run, as its days go by (`day`, once per day of trading)."""

    days: int
    merchants: list[tuple[int, str, int]]
    cards: list[str]
    rng: random.Random
    listed: list[str] = field(default_factory=list)
    pending: list[_Placed] = field(default_factory=list)

    def day(self, session: Session, offset: int, day: datetime) -> dict[str, int]:
        counts: dict[str, int] = {}
        if offset == 0:
            counts["rewards"] = self._list(session, day + timedelta(hours=7))
        self._suppliers(session, day + timedelta(hours=10))
        counts["orders"] = self._orders(session, day + timedelta(hours=21, minutes=45))
        if offset % 7 == 3:
            # Once a week the best customer treats herself to the slow supplier's dinner.
            dinner = next(i for i, (name, _) in enumerate(CATALOGUE) if name in SLOW)
            counts["orders"] += self._order(
                session, self._richest(session), dinner, day + timedelta(hours=21, minutes=50)
            )
        midnight = day + timedelta(days=1)
        rewards.cancel_overdue(session, cutoff=midnight, now=midnight, limit=1000)
        return counts

    def _supplier(self, name: str | None) -> int | None:
        if name is None:
            return None
        return next(m for m, title, _ in self.merchants if title.startswith(name))

    def _list(self, session: Session, at: datetime) -> int:
        currency = economics.terms_at(at, session=session).currency
        for supplier, listing in CATALOGUE:
            values = {k: v for k, v in listing.items() if k != "cost"}
            cost = listing.get("cost")
            values["cost_price"] = None if cost is None else {"amount": cost, "currency": currency}
            made = rewards.create_reward(session, self._supplier(supplier), values, at)
            self.listed.append(made.id)
        return len(self.listed)

    def _orders(self, session: Session, at: datetime) -> int:
        """One or two members with points to spare order something; the printed member (the
        first card) is left to order herself."""
        placed = 0
        for index in range(6):
            if placed == 2:
                break
            listing = self.rng.randrange(len(self.listed))
            card = self.rng.choice(self.cards[1:]) if index < 5 else self._richest(session)
            placed += self._order(session, card, listing, at + timedelta(minutes=index))
        return placed

    def _order(self, session: Session, card: str, listing: int, at: datetime) -> int:
        """The member orders one of the listing; 1 if she could (points, stock), else 0."""
        member = find_member(session, card)
        try:
            # A refusal leaves nothing behind, as a request's rolled-back transaction would.
            with session.begin_nested():
                order = rewards.place_order(
                    session, member_id=member.id, reward_id=self.listed[listing], quantity=1, now=at
                )
        except CoalitionError:
            return 0  # too few points, sold out: as for any member
        supplier_name = CATALOGUE[listing][0]
        account = session.execute(
            select(table(Account).c.id).where(table(Account).c.member_id == member.id)
        ).scalar_one()
        self.pending.append(
            _Placed(
                order.id,
                order.kind,
                self._supplier(supplier_name),
                supplier_name,
                account,
                order.voucher_code,
                at,
            )
        )
        return 1

    def _richest(self, session: Session) -> str:
        """The card of the member with the most points, the printed member aside."""
        members, accounts = table(Member), table(Account)
        return str(
            session.execute(
                select(members.c.card_number)
                .join(accounts, accounts.c.member_id == members.c.id)
                .where(members.c.card_number != self.cards[0])
                .order_by(accounts.c.balance.desc(), members.c.id)
                .limit(1)
            ).scalar_one()
        )

    def _suppliers(self, session: Session, at: datetime) -> None:
        """The morning after: suppliers fulfil most of yesterday's orders, tills accept some
        vouchers, a member now and then changes her mind; the slow supplier does nothing."""
        waiting = []
        for order in self.pending:
            if order.at >= at - timedelta(hours=12) or order.supplier_name in SLOW:
                waiting.append(order)
                continue
            roll = self.rng.random()
            try:
                with session.begin_nested():  # a refusal leaves nothing behind
                    if roll < 0.15:
                        rewards.cancel_order(
                            session,
                            member_account_id=order.member_account_id,
                            order_id=order.id,
                            now=at,
                        )
                    elif order.kind == "voucher" and order.voucher_code and roll < 0.6:
                        rewards.accept_voucher(session, order.supplier, order.voucher_code, at)
                    elif order.kind != "voucher" and roll < 0.75:
                        rewards.fulfil_order(session, order.supplier, order.id, at)
                    else:
                        waiting.append(order)
            except CoalitionError:
                pass  # cancelled by the night meanwhile
        self.pending = waiting
