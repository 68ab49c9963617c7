"""The demo's fraud (issue 16, point 7) for the nightly report to find, and the report itself run
each night of the demo's history: one self-dealing partner, a late-night kiosk whose till
records small purchases on regular members' cards and redeems their points a few minutes later,
once a week; and one enrol-and-drain ring, five members enrolled one morning who earn at the
DIY store and spend nearly everything at the bistro before lunch. Everything else in the demo
is honest traffic, on which the report must raise nothing (tests/test_demo.py measures it)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from coalition import clock, economics
from coalition.database import table
from coalition.errors import CoalitionError
from coalition.fraud import report
from coalition.ledger import operations
from coalition.ledger.models import Account
from coalition.ledger.rows import Actor
from coalition.members.services import find_member, register_member

# The demo's fraud needs this many days: the kiosk deals on the third day and weekly after it;
# the ring comes on the middle day.
MIN_DAYS = 5
KIOSK = "Späti Nord"
KIOSK_EMAIL = "partners@spaeti.example"
KIOSK_DAY = 2  # offsets KIOSK_DAY, KIOSK_DAY + 7, …
KIOSK_MEMBERS = 6
RING_EMAIL = "ring{n}@drain.example"
RING_SIZE = 5
# The ring earns at the DIY store and spends at the bistro (their places in demo.MERCHANTS).
RING_EARNS_AT, RING_SPENDS_AT = 7, 6
TILL = Actor("job", "demo")


@dataclass
class DemoFraud:
    """The fraud of one demo run, as its days go by (`day`, once per day of trading, after the
    day's other doings): it also runs the night's fraud report for the day."""

    days: int
    merchants: list[tuple[int, str, int]]
    cards: list[str]
    # Its own random story: it draws nothing from the honest traffic's.
    rng: random.Random = field(default_factory=lambda: random.Random(16))
    kiosk: int | None = None
    ring: list[str] = field(default_factory=list)

    def day(self, session: Session, offset: int, day: datetime) -> dict[str, int]:
        if self.days < MIN_DAYS:
            return {}
        counts: dict[str, int] = {}
        if offset == 0:
            self.kiosk = _kiosk(session, day - timedelta(days=30))
            counts["merchants"] = 1
        if offset >= KIOSK_DAY and (offset - KIOSK_DAY) % 7 == 0:
            counts |= self._self_deal(session, day + timedelta(hours=22))
        if offset == self.days // 2:
            done = self._ring(session, day + timedelta(hours=9))
            counts["members"] = RING_SIZE
            for name, value in done.items():
                counts[name] = counts.get(name, 0) + value
        zone = current_app.config["COALITION_TIMEZONE"]
        business_day = clock.business_date(day + timedelta(hours=12), zone)
        written = report.run(session, business_day, zone, day + timedelta(days=1, hours=1))
        counts["fraud_alerts"] = sum(written.values())
        return counts

    def _self_deal(self, session: Session, at: datetime) -> dict[str, int]:
        """After closing time the kiosk's till records a purchase on each of a few regulars'
        cards, then redeems about what it just issued."""
        from merchants.purchases import Line, PurchaseResult, record_batch

        assert self.kiosk is not None
        currency = economics.terms_at(at, session=session).currency
        chosen = self.rng.sample(self.cards[1:], k=min(KIOSK_MEMBERS, len(self.cards) - 1))
        lines = [
            Line(
                n + 1,
                {
                    "member": card,
                    "amount": self.rng.randint(1500, 4000),
                    "currency": currency,
                    "external_id": f"spaeti-{at:%Y%m%d}-{n}",
                    "occurred_at": at,
                },
            )
            for n, card in enumerate(chosen)
        ]
        outcomes = record_batch(session, merchant_id=self.kiosk, lines=lines, actor=TILL, now=at)
        counts = {"purchases": 0, "redemptions": 0}
        for n, (card, outcome) in enumerate(zip(chosen, outcomes, strict=True)):
            if not isinstance(outcome, PurchaseResult) or outcome.replayed:
                continue
            counts["purchases"] += 1
            earned = outcome.transaction.points
            if _spend(session, card, self.kiosk, earned, at + timedelta(minutes=10 + n)):
                counts["redemptions"] += 1
        return counts

    def _ring(self, session: Session, at: datetime) -> dict[str, int]:
        """Five members enrol in the morning, buy big at the DIY store at ten and spend all
        but a few points at the bistro before noon."""
        from merchants.purchases import Line, record_batch

        earn_at, spend_at = self.merchants[RING_EARNS_AT][0], self.merchants[RING_SPENDS_AT][0]
        currency = economics.terms_at(at, session=session).currency
        counts = {"purchases": 0, "redemptions": 0}
        for n in range(RING_SIZE):
            enrolled = at + timedelta(minutes=7 * n)
            member = register_member(
                session,
                now=enrolled,
                card_prefix=current_app.config["COALITION_CARD_PREFIX"],
                email=RING_EMAIL.format(n=n),
                name=f"Max Muster {n + 1}",
                password_hash=generate_password_hash(f"ring-{n}"),
            )
            self.ring.append(member.public_id)
            bought = enrolled + timedelta(hours=1)
            purchase = {
                "member": member.card_number,
                "amount": self.rng.randint(35000, 60000),
                "currency": currency,
                "external_id": f"ring-{at:%Y%m%d}-{n}",
                "occurred_at": bought,
            }
            record_batch(
                session, merchant_id=earn_at, lines=[Line(1, purchase)], actor=TILL, now=bought
            )
            counts["purchases"] += 1
            balance = _balance(session, member.card_number)
            spend = balance - balance % 50
            if _spend(session, member.card_number, spend_at, spend, bought + timedelta(hours=1)):
                counts["redemptions"] += 1
        return counts


def _kiosk(session: Session, at: datetime) -> int:
    from merchants.services import create_merchant

    merchant_id, _ = create_merchant(
        session,
        KIOSK,
        status="active",
        now=at,
        details={
            "email": KIOSK_EMAIL,
            "country": "DE",
            "category": "convenience",
            "website": "https://spaeti.example",
            "contact_name": f"{KIOSK} partnerships",
            "base_rate": Decimal("2"),
            "password_hash": generate_password_hash("coalition-demo"),
        },
    )
    return merchant_id


def _balance(session: Session, card: str) -> int:
    member = find_member(session, card)
    accounts = table(Account)
    return int(
        session.execute(
            select(accounts.c.balance - accounts.c.pending).where(accounts.c.member_id == member.id)
        ).scalar_one()
    )


def _spend(session: Session, card: str, merchant_id: int, points: int, at: datetime) -> bool:
    """Redeem up to `points` of the member's spendable points; False when none could be."""
    points = min(points, _balance(session, card))
    if points < 1:
        return False
    member = find_member(session, card)
    try:
        with session.begin_nested():  # a refusal leaves nothing behind
            operations.redeem(
                session,
                member_id=member.id,
                merchant_id=merchant_id,
                points=points,
                actor=TILL,
                now=at,
            )
    except CoalitionError:
        return False
    return True
