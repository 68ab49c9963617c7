"""Patterns for the insights (issue 16) in the demo: partners that win many members from others
(members enrolled at the grocer's till who make their first purchase at the bookshop or the
cinema a couple of days later, half of them coming back a week after), and a lapsed cohort
(members who join on the first day, shop every few days for the first weeks, then stop).
Written inside the demo's day loop, through the same batch path as every demo purchase, by
members of their own so the rest of the demo's shopping is unchanged."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy.orm import Session

from coalition import economics
from coalition.ledger.rows import Actor
from coalition.members.services import register_member

# The patterns need weeks to show: a shorter demo has none of them.
MIN_DAYS = 30
LAPSED_MEMBERS = 12
LAPSED_WEEKS = 3
TILL = Actor("job", "demo")
# Shops by their place in demo.MERCHANTS: the grocer enrols, the bookshop and the cinema win
# (small shares of the coalition's own shoppers, so the pattern stands out), the grocer and the
# bistro see the lapsed cohort.
GROCER, BOOKS, CINEMA, BISTRO = 0, 3, 4, 6


@dataclass
class DemoInsights:
    """The patterns of one demo run, as its days go by (`day`, once per day of trading)."""

    days: int
    merchants: list[tuple[int, str, int]]
    rng: random.Random
    # card -> (the shop that wins it, the day of its first purchase there, whether it comes back)
    won: dict[str, tuple[int, int, bool]] = field(default_factory=dict)
    lapsed: list[str] = field(default_factory=list)

    def day(self, session: Session, offset: int, day: datetime) -> dict[str, int]:
        if self.days < MIN_DAYS:
            return {}
        shopping: list[tuple[int, str, int, str]] = []  # shop, card, amount, receipt suffix
        if offset == 0:
            self.lapsed = [self._member(session, day, None) for _ in range(LAPSED_MEMBERS)]
        if offset < 7 * LAPSED_WEEKS:
            for n, card in enumerate(self.lapsed):
                if (offset + n) % 3 == 0:
                    shop = (GROCER, BISTRO)[(offset // 3 + n) % 2]
                    shopping.append((shop, card, self.rng.randint(1500, 6000), "lapsed"))
        if offset < self.days - 10:
            # One member a day joins at the grocer's till and buys there...
            card = self._member(session, day, self.merchants[GROCER][0])
            shopping.append((GROCER, card, self.rng.randint(2000, 8000), "joined"))
            self.won[card] = ((BOOKS, CINEMA)[offset % 2], offset + 2, offset // 2 % 2 == 0)
        for card, (shop, first, comes_back) in self.won.items():
            # ...first buys at the bookshop or the cinema two days later; half come back.
            if offset == first or (comes_back and offset == first + 7):
                shopping.append((shop, card, self.rng.randint(1200, 4500), "won"))
        return {"purchases": self._record(session, day, offset, shopping)}

    def _member(self, session: Session, day: datetime, enrolled_by: int | None) -> str:
        return register_member(
            session,
            now=day + timedelta(hours=8),
            card_prefix=current_app.config["COALITION_CARD_PREFIX"],
            enrolled_by_merchant_id=enrolled_by,
        ).card_number

    def _record(
        self,
        session: Session,
        day: datetime,
        offset: int,
        shopping: list[tuple[int, str, int, str]],
    ) -> int:
        from merchants.purchases import Line, PurchaseResult, record_batch

        currency = economics.terms_at(day, session=session).currency
        baskets: dict[int, list[Line]] = {}
        for shop, card, amount, kind in shopping:
            merchant_id = self.merchants[shop][0]
            basket = baskets.setdefault(merchant_id, [])
            purchase = {
                "member": card,
                "amount": amount,
                "currency": currency,
                "external_id": f"demo-insights-{offset}-{kind}-{card[-6:]}",
                "occurred_at": day + timedelta(hours=self.rng.randint(9, 19)),
            }
            basket.append(Line(len(basket) + 1, purchase))
        recorded = 0
        for merchant_id, lines in baskets.items():
            outcomes = record_batch(
                session,
                merchant_id=merchant_id,
                lines=lines,
                actor=TILL,
                now=day + timedelta(hours=21),
            )
            recorded += sum(isinstance(o, PurchaseResult) and not o.replayed for o in outcomes)
        return recorded
