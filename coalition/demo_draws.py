"""The demo's prize draws (issue 15): one that ran through the demo's weeks and closed, with its
winners drawn, and one still open, both entered day by day by members with points, the first
with free entries for purchases at two partners. Written inside the demo's day loop, so every
entry is a redemption at the operator made on its day, between that day's purchases."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from coalition import audit, economics
from coalition.errors import CoalitionError
from coalition.ledger.rows import Actor
from coalition.members.services import find_member
from coalition.oauth.lookups import merchant_public_id
from draws import services as draws

# The demo's draws need this many days of trading: one opens on the first day, closes two days
# before the last; the other opens three days before the last and stays open.
MIN_DAYS = 10
MEMBER = Actor("member", "demo")


@dataclass
class DemoDraws:
    """The draws of one demo run, as its days go by (`day`, once per day of trading)."""

    days: int
    merchants: list[tuple[int, str, int]]
    cards: list[str]
    rng: random.Random
    operator: audit.Actor  # the demo's staff admin, who opens the draws
    open: dict[str, str] = field(default_factory=dict)  # name -> draw public id
    closes: dict[str, datetime] = field(default_factory=dict)

    def day(self, session: Session, offset: int, day: datetime) -> dict[str, int]:
        if self.days < MIN_DAYS:
            return {}
        counts: dict[str, int] = {}
        if offset == 1:
            self._open_weekend(session, day)
            counts["draws"] = 1
        if offset == self.days - 3:
            self._open_cinema(session, day)
            counts["draws"] = counts.get("draws", 0) + 1
        counts["draw_entries"] = self._entries(session, day)
        closes = self.closes.get("weekend")
        if closes is not None and day <= closes < day + timedelta(days=1):
            draws.close(session, self.open.pop("weekend"), now=closes, actor=None)
            counts["draws_closed"] = 1
        return counts

    def _open_weekend(self, session: Session, day: datetime) -> None:
        currency = economics.terms_at(day, session=session).currency
        # The grocer (the first demo shop) and the cinema.
        chosen = [self.merchants[0][0]] + [m for m, name, _ in self.merchants if "Kino" in name]
        partners = [str(merchant_public_id(session, m)) for m in chosen]
        closes = day + timedelta(days=self.days - 4, hours=8)
        made = draws.open_draw(
            session,
            prize="A weekend for two in Vienna",
            entry_points=50,
            closes_at=closes,
            winners_count=3,
            free=draws.FreeEntries(partners, min_amount_minor=3000, currency=currency),
            coalition_currency=currency,
            actor=self.operator,
            now=day + timedelta(hours=7),
        )
        self.open["weekend"], self.closes["weekend"] = made.id, closes

    def _open_cinema(self, session: Session, day: datetime) -> None:
        currency = economics.terms_at(day, session=session).currency
        made = draws.open_draw(
            session,
            prize="Cinema tickets for a year at Kino Lumière",
            entry_points=25,
            closes_at=day + timedelta(days=30),
            winners_count=5,
            free=None,
            coalition_currency=currency,
            actor=self.operator,
            now=day + timedelta(hours=7),
        )
        self.open["cinema"] = made.id

    def _entries(self, session: Session, day: datetime) -> int:
        """A few members with points to spare enter each open draw. The printed member (the
        first card) is left to enter herself: her points expiring soon stay for the demo."""
        made = 0
        for name, draw_id in self.open.items():
            entrants = self.rng.sample(self.cards[1:], k=min(3, len(self.cards) - 1))
            for index, card in enumerate(entrants):
                # After the tills' closing batches, before the night's jobs.
                at = day + timedelta(hours=21, minutes=30 + index)
                if at >= self.closes.get(name, at + timedelta(seconds=1)):
                    continue
                try:
                    with session.begin_nested():  # a refusal leaves nothing behind
                        entered = draws.enter(
                            session,
                            draw_id=draw_id,
                            member_id=find_member(session, card).id,
                            entries=self.rng.randint(1, 3),
                            actor=MEMBER,
                            now=at,
                        )
                except CoalitionError:
                    continue  # too few points (or a hold): members without them stay out
                made += entered.entries
        return made
