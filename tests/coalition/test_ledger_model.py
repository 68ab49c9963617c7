"""QUALITY L3: random sequences of award (some pending, SPEC 2's pending points), purchase (the
merchant API's path, with replays of its external ids; one merchant has a pending window),
redeem, hold, capture, void, refund (inside a window or after it), reversal, confirmation of
pending points, expiry and replay, and orders of rewards (issue 15: an order spends like a
redemption at its supplier, a merchant or the operator; a member's cancel and the nightly cancel
of an overdue order give the points back to the very lots), run against
PostgreSQL and SQLite and, after every step, compared with a plain in-memory model of SPEC 2 and
checked by `verify-ledger`."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import clock, economics, idempotency
from coalition.errors import (
    AlreadyReversed,
    CoalitionError,
    HoldNotActive,
    InsufficientPoints,
    RefundExceedsPurchase,
)
from coalition.extensions import db
from coalition.ledger import awards, expiry, holds, operations, reads
from coalition.ledger import lots as lotplan
from coalition.ledger.accounts import merchant_account_id, operator_account_id
from coalition.ledger.models import Account, Lot, Transaction
from coalition.ledger.pending import confirm_due_lots
from coalition.ledger.rows import Actor
from coalition.ledger.verify import verify
from coalition.members.models import Member
from merchants import purchases as till
from merchants import rules as earn_rules
from merchants.services import set_pending_days
from rewards import services as catalogue
from tests import factories as f
from tests.factories import T0, TILL

MEMBERS, MERCHANTS = 3, 3
# Each example is a fresh, rolled-back database and up to 30 steps. SQLite, the embedded
# default, takes a quarter as many: the same code, a second database, within CI's time.
EXAMPLES = int(os.environ.get("LEDGER_MODEL_EXAMPLES", "100"))
EXAMPLES_BY_BACKEND = {"postgresql": EXAMPLES, "sqlite": max(1, EXAMPLES // 4)}
SOURCES = ("merchant", "tier", "welcome")
# The last merchant's purchases are pending this many days (SPEC 2, Pending points).
WINDOW_DAYS = 3
# What the model's rewards have in common (issue 15): each names its price, stock and days.
REWARD = {
    "name": "Mug",
    "kind": "gift",
    "cost_price": None,
    "valid_from": None,
    "valid_until": None,
    "category": "kitchen",
    "description": "",
}


@dataclass
class ModelLot:
    seq: int
    source: str
    issuer: int | None  # the funding merchant's id; None for the operator (tier, welcome)
    expires_at: datetime
    points: int
    remaining: int
    purchase: str | None
    # Points that left by redemption or debt repayment, net of reversals: what the issuer
    # has paid for under `on_redemption` (SPEC 2's clawback credits).
    spent: int = 0
    # SPEC 2, Pending points: the end of its window (None: spendable at once), and whether the
    # nightly job has confirmed it.
    pending_until: datetime | None = None
    confirmed: bool = False

    @property
    def pending(self) -> bool:
        return self.pending_until is not None and not self.confirmed


@dataclass
class ModelHold:
    member_id: int
    merchant_id: int
    points: int
    until: datetime
    status: str = "active"

    def active(self, now: datetime) -> bool:
        return self.status == "active" and self.until > now


@dataclass
class ModelMember:
    lots: list[ModelLot] = field(default_factory=list)
    debt: int = 0
    welcomed: bool = False  # SPEC 2: only a member's first award may carry the welcome bonus
    holds: dict[str, ModelHold] = field(default_factory=dict)

    @property
    def balance(self) -> int:
        return sum(lot.remaining for lot in self.lots) - self.debt

    @property
    def pending(self) -> int:
        return sum(lot.remaining for lot in self.lots if lot.pending)

    def available(self, now: datetime, excluding: str | None = None) -> int:
        """What can be spent: balance less pending points and active holds."""
        return self.balance - self.pending - self.held(now, excluding)

    def held(self, now: datetime, excluding: str | None = None) -> int:
        return sum(h.points for key, h in self.holds.items() if h.active(now) and key != excluding)

    def open_lots(self, first: tuple[int, ...] = ()) -> list[ModelLot]:
        """Open lots in spending order; a pending lot only if named in `first` (a refund of
        its own purchase)."""
        return sorted(
            (
                lot
                for lot in self.lots
                if lot.remaining > 0 and (not lot.pending or lot.seq in first)
            ),
            key=lambda lot: (lot.seq not in first, lot.expires_at, lot.seq),
        )

    def take(
        self, points: int, first: tuple[int, ...] = ()
    ) -> tuple[list[tuple[ModelLot, int]], int]:
        """SPEC 2: soonest-expiring first (ties: created first); returns takes and shortfall."""
        takes = []
        for lot in self.open_lots(first):
            if points == 0:
                break
            taken = min(lot.remaining, points)
            lot.remaining -= taken
            takes.append((lot, taken))
            points -= taken
        return takes, points

    def spend(self, points: int) -> list[tuple[ModelLot, int]]:
        """A redemption or a debt repayment: lots in spending order, none short."""
        takes, short = self.take(points)
        assert short == 0
        for lot, taken in takes:
            lot.spent += taken
        return takes

    def repay(self) -> None:
        """SPEC 2: newly credited points pay off debt before they can be spent (pending ones
        only once confirmed)."""
        repaid = min(self.debt, sum(lot.remaining for lot in self.lots if not lot.pending))
        self.spend(repaid)
        self.debt -= repaid

    def claw_back(self, portions: dict[str, int], own: tuple[int, ...]) -> int:
        """SPEC 2 and decision 5, per funder: each funder's portion first from its own lot of
        the purchase; what its lot cannot cover from the purchase's other lots, then the
        member's other lots soonest-expiring first, then debt. Returns the points that were
        not in the merchant's own lot (the ones it may have paid for)."""
        lot_of = {lot.source: lot for lot in self.lots if lot.seq in own}
        left = {}
        for source, points in portions.items():
            lot = lot_of.get(source)
            taken = min(lot.remaining, points) if lot else 0
            if lot:
                lot.remaining -= taken
            left[source] = points - taken
        for source in SOURCES:
            _, short = self.take(left.get(source, 0), first=own)
            self.debt += short
        return left.get("merchant", 0)

    def confirm(self, cutoff: datetime) -> None:
        """The nightly job: lots whose window ended by `cutoff` become spendable and repay debt."""
        for lot in self.lots:
            if lot.pending and lot.pending_until is not None and lot.pending_until <= cutoff:
                lot.confirmed = True
        self.repay()


class LedgerMachine(RuleBasedStateMachine):
    app = None  # set by the test
    examples = 0
    steps = 0

    def __init__(self) -> None:
        super().__init__()
        LedgerMachine.examples += 1
        self.context = self.app.app_context()
        self.context.push()
        self.connection = db.engine.connect()
        self.outer = self.connection.begin()
        self.session = Session(bind=self.connection, join_transaction_mode="create_savepoint")
        self.now = T0
        self.seq = itertools.count()
        self.keys = itertools.count()
        self.merchants = [f.merchant(self.session, f"M{i}") for i in range(MERCHANTS)]
        self.issuer_accounts = {m: merchant_account_id(self.session, m) for m in self.merchants}
        self.issuer_accounts[None] = operator_account_id(self.session)
        self.member_ids = [f.member(self.session) for _ in range(MEMBERS)]
        set_pending_days(self.session, self.merchants[-1], WINDOW_DAYS, now=self.now)
        self.model = {m: ModelMember() for m in self.member_ids}
        self.purchases: dict[str, dict] = {}
        # What the till sent under each external id, and the purchase it recorded.
        self.receipts: list[tuple[int, dict, str]] = []
        self.redemptions: dict[str, dict] = {}
        self.replays: list[tuple[str, str, str, idempotency.Outcome]] = []
        # Rewards of a merchant and of the operator, a few in stock, due in 1 and 2 days.
        self.rewards = [
            {
                "id": catalogue.create_reward(
                    self.session,
                    supplier,
                    {**REWARD, "points": price, "stock": stock, "fulfilment_days": days},
                    self.now,
                ).id,
                "supplier": supplier,
                "price": price,
                "stock": stock,
                "days": days,
            }
            for supplier, price, stock, days in (
                (self.merchants[0], 40, 3, 1),
                (None, 90, None, 2),
            )
        ]
        self.orders: dict[str, dict] = {}

    def teardown(self) -> None:
        self.session.close()
        self.outer.rollback()
        self.connection.close()
        self.context.pop()

    # -- helpers ---------------------------------------------------------------------------

    def _keyed(self, scope: str, request: tuple, operation) -> idempotency.Outcome:
        key = f"k{next(self.keys)}"
        fingerprint = idempotency.fingerprint(*request)
        outcome = idempotency.execute(
            self.session,
            scope=scope,
            key=key,
            request_fingerprint=fingerprint,
            operation=operation,
            now=self.now,
        )
        self.replays.append((scope, key, fingerprint, outcome))
        return outcome

    def _attempt(self, expected_error, call):
        """Run `call` in a savepoint; if the model expects a refusal, it must be that one."""
        with self.session.begin_nested() as savepoint:
            try:
                result = call()
            except CoalitionError as refusal:
                savepoint.rollback()
                assert isinstance(refusal, expected_error or ()), f"unexpected refusal {refusal!r}"
                return None
        assert expected_error is None, f"expected {expected_error.__name__}, got success"
        return result

    # -- rules -----------------------------------------------------------------------------

    @rule(
        member=st.integers(0, MEMBERS - 1),
        merchant=st.integers(0, MERCHANTS - 1),
        merchant_points=st.integers(0, 200),
        tier=st.integers(0, 40),
        welcome=st.sampled_from([0, 0, 100]),
        amount=st.integers(1, 30_000),
        life_days=st.integers(1, 60),
        window_days=st.sampled_from([None, None, 1, 5]),
    )
    def award(
        self, member, merchant, merchant_points, tier, welcome, amount, life_days, window_days
    ):
        member_id, merchant_id = self.member_ids[member], self.merchants[merchant]
        parts = {"merchant": merchant_points, "tier": tier, "welcome": welcome}
        expires = self.now + timedelta(days=life_days)
        until = self.now + timedelta(days=window_days) if window_days else None
        outcome = self._keyed(
            f"merchant:{merchant_id}",
            ("award", member_id, parts, amount, expires, until),
            lambda: (
                201,
                awards.award(
                    self.session,
                    member_id=member_id,
                    merchant_id=merchant_id,
                    parts=parts,
                    expires_at=expires,
                    amount_minor=amount,
                    currency="EUR",
                    actor=TILL,
                    now=self.now,
                    pending_until=until,
                ),
            ),
        )
        txn = outcome.body["transaction"]["id"]
        self._awarded(txn, member_id, merchant_id, amount, parts, expires, until)

    def _awarded(self, txn, member_id, merchant_id, amount, parts, expires, until=None) -> None:
        """The model's side of an award: a lot per non-zero part (the merchant's first), the
        debt repaid from them, the member welcomed, and the purchase kept for refunds."""
        model = self.model[member_id]
        seqs = []
        for source in SOURCES:
            if parts[source]:
                issuer = merchant_id if source == "merchant" else None
                lot = ModelLot(
                    next(self.seq),
                    source,
                    issuer,
                    expires,
                    parts[source],
                    parts[source],
                    txn,
                    pending_until=until,
                )
                model.lots.append(lot)
                seqs.append(lot.seq)
        model.repay()
        model.welcomed = True
        self.purchases[txn] = {
            "member": member_id,
            "merchant": merchant_id,
            "amount": amount,
            "parts": parts,
            "refunded": 0,
            "clawed": dict.fromkeys(SOURCES, 0),
            "paid": 0,
            "lots": tuple(seqs),
        }

    @rule(
        member=st.integers(0, MEMBERS - 1),
        merchant=st.integers(0, MERCHANTS - 1),
        amount=st.integers(1, 30_000),
        again=st.booleans(),
    )
    def purchase(self, member, merchant, amount, again):
        """A purchase as the merchant API records it (`merchants.purchases.record_purchase`):
        the base rate's points and, on a member's first award, the welcome bonus; or, `again`,
        a repeat of an earlier receipt, which replays its purchase and changes nothing."""
        if again and self.receipts:
            merchant_id, sent, first = self.receipts[-1]
            replay = till.record_purchase(
                self.session, merchant_id=merchant_id, purchase=sent, actor=TILL, now=self.now
            )
            assert replay.replayed and replay.transaction.id == first
            return
        member_id, merchant_id = self.member_ids[member], self.merchants[merchant]
        terms = economics.terms_at(self.now, merchant_id, self.session)
        card, tier = self.session.execute(
            select(Member.card_number, Member.tier).where(Member.id == member_id)
        ).one()
        sent = {
            "member": card,
            "amount": amount,
            "currency": terms.currency,
            "external_id": f"receipt-{next(self.keys)}",
        }
        result = till.record_purchase(
            self.session, merchant_id=merchant_id, purchase=sent, actor=TILL, now=self.now
        )
        model = self.model[member_id]
        # The purchase earns what the earn arithmetic says (property-tested on its own) for the
        # member's tier as it was: a member whose purchases crossed a threshold earns the
        # tier's operator-funded extra from its next purchase on.
        rules = earn_rules.in_force_at(self.session, merchant_id, self.now).rules
        earned = till.earned_for(sent, rules, terms, tier, {}, self.now)
        parts = {
            "merchant": earned.merchant_funded,
            "tier": earned.operator_funded,
            "welcome": 0 if model.welcomed else terms.welcome_bonus,
        }
        assert not result.replayed
        assert result.transaction.points == sum(parts.values())
        expires = clock.add_months(self.now, terms.expiry_months)
        window = WINDOW_DAYS if merchant_id == self.merchants[-1] else 0
        until = self.now + timedelta(days=window) if window else None
        self._awarded(result.transaction.id, member_id, merchant_id, amount, parts, expires, until)
        assert result.member.balance == model.balance
        self.receipts.append((merchant_id, sent, result.transaction.id))

    @rule(
        member=st.integers(0, MEMBERS - 1),
        merchant=st.integers(0, MERCHANTS - 1),
        points=st.integers(1, 300),
    )
    def redeem(self, member, merchant, points):
        member_id, merchant_id = self.member_ids[member], self.merchants[merchant]
        model = self.model[member_id]
        affordable = points <= model.available(self.now)
        outcome = self._keyed(
            f"merchant:{merchant_id}",
            ("redeem", member_id, points),
            lambda: (
                201,
                operations.redeem(
                    self.session,
                    member_id=member_id,
                    merchant_id=merchant_id,
                    points=points,
                    actor=TILL,
                    now=self.now,
                ),
            ),
        )
        if not affordable:
            assert outcome.status == 422 and outcome.body["code"] == "insufficient_points"
            return
        assert outcome.status == 201, outcome.body
        takes = model.spend(points)
        self.redemptions[outcome.body["transaction"]["id"]] = {
            "member": member_id,
            "merchant": merchant_id,
            "takes": takes,
            "reversed": False,
        }

    @rule(
        member=st.integers(0, MEMBERS - 1),
        merchant=st.integers(0, MERCHANTS - 1),
        points=st.integers(1, 200),
        ttl=st.sampled_from([timedelta(minutes=15), timedelta(days=2)]),
    )
    def hold(self, member, merchant, points, ttl):
        member_id, merchant_id = self.member_ids[member], self.merchants[merchant]
        model = self.model[member_id]
        ok = points <= model.available(self.now)
        result = self._attempt(
            None if ok else InsufficientPoints,
            lambda: holds.place_hold(
                self.session,
                member_id=member_id,
                merchant_id=merchant_id,
                points=points,
                now=self.now,
                ttl=ttl,
            ),
        )
        if result:
            model.holds[result["hold"]["id"]] = ModelHold(
                member_id, merchant_id, points, self.now + ttl
            )

    def _holds(self):
        return [(h, v) for m in self.model.values() for h, v in m.holds.items()]

    @precondition(lambda self: self._holds())
    @rule(data=st.data(), part=st.sampled_from([None, 1, 0.5]))
    def capture(self, data, part):
        hold_id, hold = data.draw(st.sampled_from(self._holds()))
        model = self.model[hold.member_id]
        wanted = None if part is None else max(1, int(hold.points * part))
        spend = hold.points if wanted is None else wanted
        if not hold.active(self.now):
            expected = HoldNotActive
        elif spend > model.available(self.now, excluding=hold_id):
            expected = InsufficientPoints
        else:
            expected = None
        result = self._attempt(
            expected,
            lambda: holds.capture_hold(
                self.session,
                hold_id=hold_id,
                merchant_id=hold.merchant_id,
                points=wanted,
                actor=TILL,
                now=self.now,
            ),
        )
        if result:
            takes = model.spend(spend)
            hold.status = "captured"
            self.redemptions[result["transaction"]["id"]] = {
                "member": hold.member_id,
                "merchant": hold.merchant_id,
                "takes": takes,
                "reversed": False,
            }

    @precondition(lambda self: self._holds())
    @rule(data=st.data())
    def void(self, data):
        hold_id, hold = data.draw(st.sampled_from(self._holds()))
        if self._attempt(
            None if hold.active(self.now) else HoldNotActive,
            lambda: holds.void_hold(
                self.session, hold_id=hold_id, merchant_id=hold.merchant_id, now=self.now
            ),
        ):
            hold.status = "voided"

    @precondition(lambda self: self.purchases)
    @rule(data=st.data(), share=st.sampled_from([0.1, 0.33, 0.5, 1.0, 1.2]))
    def refund(self, data, share):
        txn = data.draw(st.sampled_from(list(self.purchases)))
        purchase = self.purchases[txn]
        amount = max(1, int(purchase["amount"] * share))
        fits = purchase["refunded"] + amount <= purchase["amount"]
        result = self._attempt(
            None if fits else RefundExceedsPurchase,
            lambda: operations.refund(
                self.session,
                purchase_id=txn,
                merchant_id=purchase["merchant"],
                amount_minor=amount,
                actor=TILL,
                now=self.now,
            ),
        )
        if not result:
            return
        purchase["refunded"] += amount
        portions = {}
        for source in SOURCES:
            points = purchase["parts"][source]
            if source == "welcome":
                target = points if purchase["refunded"] == purchase["amount"] else 0
            else:
                target = points * purchase["refunded"] // purchase["amount"]
            portions[source] = target - purchase["clawed"][source]
            purchase["clawed"][source] = target
        assert result["transaction"]["points_clawed_back"] == sum(portions.values())
        model = self.model[purchase["member"]]
        own = [lot for lot in model.lots if lot.seq in purchase["lots"]]
        merchant_lot = next((lot for lot in own if lot.source == "merchant"), None)
        beyond_own_lot = model.claw_back(portions, purchase["lots"])
        # SPEC 2 (on_redemption): the issuer is credited for the clawed points it had paid
        # for: those its own lot no longer held, as far as its lot's points were spent.
        paid = 0
        if merchant_lot is not None:
            paid = max(min(beyond_own_lot, merchant_lot.spent - purchase["paid"]), 0)
        purchase["paid"] += paid
        recorded = self.session.execute(
            select(Transaction.__table__.c.paid_points).where(
                Transaction.__table__.c.public_id == result["transaction"]["id"]
            )
        ).scalar_one()
        assert recorded == paid

    @precondition(lambda self: self.redemptions)
    @rule(data=st.data())
    def reverse(self, data):
        txn = data.draw(st.sampled_from(list(self.redemptions)))
        redemption = self.redemptions[txn]
        result = self._attempt(
            AlreadyReversed if redemption["reversed"] else None,
            lambda: operations.reverse_redemption(
                self.session,
                redemption_id=txn,
                merchant_id=redemption["merchant"],
                actor=TILL,
                now=self.now,
            ),
        )
        if result:
            redemption["reversed"] = True
            for lot, taken in redemption["takes"]:
                lot.remaining += taken
                lot.spent -= taken
            self.model[redemption["member"]].repay()

    @rule(minutes=st.sampled_from([1, 14, 16, 60 * 24, 60 * 24 * 20]))
    def time_passes_and_points_expire(self, minutes):
        """The nightly jobs in their order: pending points whose window ended are confirmed
        (twice: the second run finds nothing), then expired lots expire (not pending ones)."""
        self.now += timedelta(minutes=minutes)
        for _ in range(2):
            while confirm_due_lots(self.session, cutoff=self.now, now=self.now, limit=2):
                pass
        job = Actor("job", "expire-points")
        while expiry.expire_due_lots(
            self.session, cutoff=self.now, now=self.now, actor=job, limit=2
        ):
            pass
        for model in self.model.values():
            model.confirm(self.now)
            for lot in model.lots:
                if lot.expires_at <= self.now and not lot.pending:
                    lot.remaining = 0

    @precondition(lambda self: self.replays)
    @rule(data=st.data())
    def replay(self, data):
        scope, key, fingerprint, first = data.draw(st.sampled_from(self.replays))

        def must_not_run():
            raise AssertionError("a replay ran its operation again")

        again = idempotency.execute(
            self.session,
            scope=scope,
            key=key,
            request_fingerprint=fingerprint,
            operation=must_not_run,
            now=self.now,
        )
        assert (again.status, again.body, again.replayed) == (first.status, first.body, True)

    @rule(
        member=st.integers(0, MEMBERS - 1),
        which=st.integers(0, 1),
        quantity=st.integers(1, 2),
    )
    def order(self, member, which, quantity):
        member_id, wanted = self.member_ids[member], self.rewards[which]
        model = self.model[member_id]
        points = wanted["price"] * quantity
        expected = None
        if wanted["stock"] is not None and wanted["stock"] < quantity:
            expected = catalogue.OutOfStock  # stock is taken before the points
        elif points > model.available(self.now):
            expected = InsufficientPoints
        placed = self._attempt(
            expected,
            lambda: catalogue.place_order(
                self.session,
                member_id=member_id,
                reward_id=wanted["id"],
                quantity=quantity,
                now=self.now,
            ),
        )
        if placed is None:
            return
        if wanted["stock"] is not None:
            wanted["stock"] -= quantity
        self.orders[placed.id] = {
            "member": member_id,
            "reward": wanted,
            "quantity": quantity,
            "takes": model.spend(points),
            "due": self.now + timedelta(days=wanted["days"]),
            "seq": next(self.seq),
            "status": "pending",
        }

    def _order_cancelled(self, order: dict) -> None:
        order["status"] = "cancelled"
        if order["reward"]["stock"] is not None:
            order["reward"]["stock"] += order["quantity"]
        for lot, taken in order["takes"]:
            lot.remaining += taken
            lot.spent -= taken
        self.model[order["member"]].repay()

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), fulfil=st.booleans())
    def cancel_or_fulfil_an_order(self, data, fulfil):
        order_id = data.draw(st.sampled_from(sorted(self.orders)))
        order = self.orders[order_id]
        expected = None if order["status"] == "pending" else catalogue.OrderNotPending
        if fulfil:
            done = self._attempt(
                expected,
                lambda: catalogue.fulfil_order(
                    self.session, order["reward"]["supplier"], order_id, self.now
                ),
            )
            if done is not None:
                order["status"] = "fulfilled"
            return
        account_id = self.session.execute(
            select(Account.__table__.c.id).where(Account.__table__.c.member_id == order["member"])
        ).scalar_one()
        done = self._attempt(
            expected,
            lambda: catalogue.cancel_order(
                self.session, member_account_id=account_id, order_id=order_id, now=self.now
            ),
        )
        if done is not None:
            self._order_cancelled(order)

    @precondition(lambda self: self.orders)
    @rule()
    def overdue_orders_are_cancelled(self):
        """The nightly cancel, in batches of two, then once more (a rerun finds nothing)."""
        while catalogue.cancel_overdue(self.session, cutoff=self.now, now=self.now, limit=2):
            pass
        assert catalogue.cancel_overdue(self.session, cutoff=self.now, now=self.now, limit=2) == 0
        due = [o for o in self.orders.values() if o["status"] == "pending" and o["due"] <= self.now]
        for order in sorted(due, key=lambda o: (o["due"], o["seq"])):
            self._order_cancelled(order)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def database_agrees_with_the_model(self):
        LedgerMachine.steps += 1
        accounts, lots = Account.__table__, Lot.__table__
        for member_id, model in self.model.items():
            seen = reads.balance(self.session, member_id, self.now)
            assert seen["balance"] == model.balance
            assert seen["debt"] == model.debt
            assert seen["available"] == max(model.available(self.now), 0)
            assert seen["pending"] == model.pending
            # In debt, a member holds no spendable points: only pending ones, which wait for their
            # confirmation to repay it (SPEC 2), so the confirmed part is exactly the debt owed.
            confirmed = seen["balance"] - seen["pending"]
            assert confirmed >= 0 or seen["debt"] == -confirmed
            # Per lot, who funded it and what it still holds.
            remaining = self.session.execute(
                select(
                    lots.c.source,
                    lots.c.issuer_account_id,
                    lots.c.remaining,
                    lotplan.pending().label("pending"),
                )
                .join(accounts, accounts.c.id == lots.c.account_id)
                .where(accounts.c.member_id == member_id)
                .order_by(lots.c.id)
            ).all()
            assert [tuple(row) for row in remaining] == [
                (lot.source, self.issuer_accounts[lot.issuer], lot.remaining, lot.pending)
                for lot in model.lots
            ]

    @invariant()
    def ledger_verifies(self):
        assert verify(self.session) == []


@pytest.mark.both_backends
def test_the_ledger_behaves_like_its_model(app, backend, record_property):
    LedgerMachine.app, LedgerMachine.examples, LedgerMachine.steps = app, 0, 0
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=EXAMPLES_BY_BACKEND[backend],
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    examples, steps = LedgerMachine.examples, LedgerMachine.steps
    record_property(
        "summary", f"ledger model (L3, {backend}): {examples} examples, {steps} checked states"
    )
