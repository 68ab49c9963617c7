"""Pricing one business day (SPEC 2, money flows): what each merchant owes and is owed, the
issuer x redeemer flows, and the operator's result computed a second way, by its terms.

The ledger is read set-based: three GROUP BY queries over the day's award transfers, lot
consumptions and refunds return a few rows per merchant (or per issuer-redeemer pair), whatever
the size of the day; Python then prices those totals. No loop ever runs over transfers, so a run's
memory does not grow with the day's traffic.

Signs: `net = owed - receivable`; positive, the merchant pays the operator. Amounts are exact
`Decimal`s in major units; rounding happens once, on the monthly statement."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from coalition.database import table
from coalition.economics import Terms
from coalition.ledger.models import Account, LotConsumption, Transaction, Transfer

accounts = table(Account)
transfers = table(Transfer)
consumptions = table(LotConsumption)
transactions = table(Transaction)

ZERO = Decimal(0)
# Components of a position, by side. Each is {"points", "amount"}; their amounts add up to
# `owed` (what the merchant pays) and `receivable` (what it is paid).
OWED = ("issue_charges", "redemption_charges", "reversal_debits", "debt_repayments")
RECEIVABLE = ("reimbursements", "clawback_credits", "reversal_credits")


@dataclass
class Component:
    points: int = 0
    amount: Decimal = ZERO

    def add(self, points: int, amount: Decimal) -> None:
        self.points += points
        self.amount += amount


@dataclass
class Position:
    """One merchant's day."""

    issued: int = 0
    redeemed: int = 0
    expired: int = 0
    clawed_back: int = 0
    reversed: int = 0
    components: dict[str, Component] = field(default_factory=lambda: defaultdict(Component))

    @property
    def confirmed(self) -> int:
        # Without a pending window (the rules issue brings one) points are confirmed at issue.
        return self.issued

    @property
    def owed(self) -> Decimal:
        return sum((self.components[k].amount for k in OWED if k in self.components), ZERO)

    @property
    def receivable(self) -> Decimal:
        return sum((self.components[k].amount for k in RECEIVABLE if k in self.components), ZERO)

    @property
    def net(self) -> Decimal:
        return self.owed - self.receivable

    def is_empty(self) -> bool:
        counts = (self.issued, self.redeemed, self.expired, self.clawed_back, self.reversed)
        return not any(counts) and not any(c.points or c.amount for c in self.components.values())


Consumed = tuple[str, "int | None", "int | None", int]  # kind, issuer, redeemer, points
FlowSink = Callable[[int | None, int | None, int, Decimal], None]


@dataclass(frozen=True)
class Totals:
    """The ledger's totals for a window, by party: what a run prices. Merchants are named by
    id; None is the operator (or, as an issuer, a clawback no lot covered)."""

    # merchant id -> points it issued (award transfers it funded)
    issued: Mapping[int, int]
    # merchant id -> points of its refunds' clawbacks that it had already paid for
    paid_back: Mapping[int, int]
    # operator-funded points awarded (welcome and tier bonuses)
    operator_issued: int
    # (kind, issuer, redeemer, points) for lot consumptions of kind redeem, restore, repay,
    # expire and clawback (debt counted as clawback), grouped and streamed from the database
    # in (issuer, redeemer) order, so a run holds one pair at a time, never the whole matrix
    consumed: Iterable[Consumed]


@dataclass
class Day:
    positions: dict[int, Position]
    operator: dict[str, Decimal]

    @property
    def nets(self) -> Decimal:
        return sum((p.net for p in self.positions.values()), ZERO)


STREAM_CHUNK = 2000


def read_totals(session: Session, start: datetime, end: datetime) -> Totals:
    """The day's ledger totals: three aggregate queries over the rows dated in [start, end);
    the lot consumptions' totals are streamed (read them once, before the session is used
    for anything else that needs their connection's cursor)."""
    merchant_of = dict(
        session.execute(
            select(accounts.c.id, accounts.c.merchant_id).where(accounts.c.kind == "merchant")
        ).all()
    )
    award_rows = session.execute(
        select(transfers.c.debit_account_id, func.sum(transfers.c.amount))
        .where(
            transfers.c.created_at >= start,
            transfers.c.created_at < end,
            transfers.c.kind == "award",
        )
        .group_by(transfers.c.debit_account_id)
    ).all()
    issued: dict[int, int] = {}
    operator_issued = 0
    for account_id, points in award_rows:
        if account_id in merchant_of:
            issued[merchant_of[account_id]] = int(points)
        else:
            operator_issued += int(points)
    paid_back = dict(
        session.execute(
            select(transactions.c.merchant_id, func.sum(transactions.c.paid_points))
            .where(
                and_(
                    transactions.c.created_at >= start,
                    transactions.c.created_at < end,
                    transactions.c.type == "refund",
                    transactions.c.paid_points > 0,
                )
            )
            .group_by(transactions.c.merchant_id)
        ).all()
    )
    # A debt record (no lot) is a clawback the member could not cover: count it as clawed.
    kind = func.replace(consumptions.c.kind, "debt", "clawback")
    issuer, redeemer = consumptions.c.issuer_account_id, consumptions.c.redeemer_account_id
    grouped = (
        select(kind, issuer, redeemer, func.sum(consumptions.c.points))
        .where(consumptions.c.created_at >= start, consumptions.c.created_at < end)
        .group_by(kind, issuer, redeemer)
        .order_by(issuer, redeemer, kind)
        .execution_options(yield_per=STREAM_CHUNK)
    )

    def consumed() -> Iterator[Consumed]:
        for row_kind, issuer_id, redeemer_id, points in session.execute(grouped):
            yield row_kind, merchant_of.get(issuer_id), merchant_of.get(redeemer_id), int(points)

    return Totals(
        issued=issued,
        paid_back={m: int(p) for m, p in paid_back.items()},
        operator_issued=operator_issued,
        consumed=consumed(),
    )


def price(
    totals: Totals, base: Terms, terms_of: Mapping[int, Terms], flow: FlowSink | None = None
) -> Day:
    """Price a day's totals under the coalition's terms `base` (currency, point value, funding
    model) and each issuer's own (`terms_of`, for issue price and fee). Each issuer x redeemer
    flow (points net of reversals, and their value) goes to `flow` as soon as it is complete."""
    positions: dict[int, Position] = defaultdict(Position)
    book = OperatorBook(base, terms_of)
    value = base.point_value
    prefunded = base.funding_model == "prefunded"
    pair: tuple[int | None, int | None] | None = None
    pair_points = 0

    def issuer_terms(merchant_id: int) -> Terms:
        return terms_of.get(merchant_id, base)

    def close_pair() -> None:
        if pair is not None and pair_points and flow is not None:
            flow(pair[0], pair[1], pair_points, value * pair_points)

    for merchant_id, points in totals.issued.items():
        positions[merchant_id].issued += points
        book.issued(merchant_id, points)
        if prefunded:
            charge = issuer_terms(merchant_id).issue_price * points
            positions[merchant_id].components["issue_charges"].add(points, charge)

    for kind, issuer, redeemer, points in totals.consumed:
        book.consumed(kind, issuer, redeemer, points)
        if kind == "expire":
            if issuer is not None:
                positions[issuer].expired += points
            continue
        if kind == "clawback":
            # The credited party (a merchant, or the operator for its own bonuses).
            if redeemer is not None:
                positions[redeemer].clawed_back += points
                if prefunded:
                    credit = issuer_terms(redeemer).issue_price * points
                    positions[redeemer].components["clawback_credits"].add(points, credit)
            continue
        if (issuer, redeemer) != pair:
            close_pair()
            pair, pair_points = (issuer, redeemer), 0
        sign = -1 if kind == "restore" else 1
        pair_points += sign * points
        if kind == "repay":
            # SPEC 2: a debt repaid from a new lot is a redemption of it at the operator.
            if issuer is not None and not prefunded:
                rate = value * (1 + issuer_terms(issuer).operator_fee_rate)
                positions[issuer].components["debt_repayments"].add(points, rate * points)
            continue
        if redeemer is None:
            continue
        if kind == "redeem":
            positions[redeemer].redeemed += points
        else:
            positions[redeemer].reversed += points
        if prefunded:
            side = "reimbursements" if kind == "redeem" else "reversal_debits"
            positions[redeemer].components[side].add(points, value * points)
            continue
        _price_on_redemption(positions, kind, issuer, redeemer, points, value, issuer_terms)
    close_pair()

    for merchant_id, points in totals.paid_back.items():
        book.paid_back(merchant_id, points)
        if not prefunded:
            rate = value * (1 + issuer_terms(merchant_id).operator_fee_rate)
            positions[merchant_id].components["clawback_credits"].add(points, rate * points)

    kept = {m: p for m, p in positions.items() if not p.is_empty()}
    day = Day(positions=kept, operator=book.result())
    if day.nets != day.operator["result"]:
        raise AssertionError(
            f"money is not conserved: nets add up to {day.nets}, "
            f"the operator's result is {day.operator['result']}"
        )
    return day


def _price_on_redemption(
    positions: dict[int, Position],
    kind: str,
    issuer: int | None,
    redeemer: int,
    points: int,
    value: Decimal,
    issuer_terms: Any,
) -> None:
    """SPEC 2, `on_redemption`: when A's points are spent at B, A owes value x (1 + fee) and B
    is owed value; if A is B, A owes only the fee; the operator's own points it pays itself. A
    reversal undoes exactly what its redemption priced."""
    redeemed = kind == "redeem"
    if issuer == redeemer:
        fee = value * issuer_terms(issuer).operator_fee_rate * points
        side = "redemption_charges" if redeemed else "reversal_credits"
        positions[redeemer].components[side].add(points, fee)
        return
    side = "reimbursements" if redeemed else "reversal_debits"
    positions[redeemer].components[side].add(points, value * points)
    if issuer is not None:
        charge = value * (1 + issuer_terms(issuer).operator_fee_rate) * points
        side = "redemption_charges" if redeemed else "reversal_credits"
        positions[issuer].components[side].add(points, charge)


class OperatorBook:
    """SPEC 2: the operator's cash result decomposed by its terms, kept by kind of movement
    rather than from the positions: issue revenue + fees + debt recovered - reimbursements -
    clawback credits - operator-funded points redeemed (each where the model has it). `price`
    asserts that the positions' nets add up to its `result`."""

    def __init__(self, base: Terms, terms_of: Mapping[int, Terms]) -> None:
        self.base, self.terms_of = base, terms_of
        self.prefunded = base.funding_model == "prefunded"
        names = (
            ("issue_revenue", "reimbursements", "clawback_credits")
            if self.prefunded
            else ("fees", "debt_recovered", "operator_funded_redeemed", "clawback_credits")
        )
        self.terms: dict[str, Decimal] = dict.fromkeys(names, ZERO)

    def _fee(self, merchant_id: int | None) -> Decimal:
        if merchant_id is None:
            return ZERO
        return self.terms_of.get(merchant_id, self.base).operator_fee_rate

    def _issue_price(self, merchant_id: int) -> Decimal:
        return self.terms_of.get(merchant_id, self.base).issue_price

    def issued(self, merchant_id: int, points: int) -> None:
        if self.prefunded:
            self.terms["issue_revenue"] += self._issue_price(merchant_id) * points

    def consumed(self, kind: str, issuer: int | None, redeemer: int | None, points: int) -> None:
        value = self.base.point_value
        if kind in ("redeem", "restore") and redeemer is not None:
            spent = points if kind == "redeem" else -points
            if self.prefunded:
                self.terms["reimbursements"] += value * spent
            else:
                self.terms["fees"] += value * self._fee(issuer) * spent
                if issuer is None:
                    self.terms["operator_funded_redeemed"] += value * spent
        elif kind == "repay" and not self.prefunded:
            self.terms["fees"] += value * self._fee(issuer) * points
            if issuer is not None:
                self.terms["debt_recovered"] += value * points
        elif kind == "clawback" and redeemer is not None and self.prefunded:
            self.terms["clawback_credits"] += self._issue_price(redeemer) * points

    def paid_back(self, merchant_id: int, points: int) -> None:
        if not self.prefunded:
            rate = self.base.point_value * (1 + self._fee(merchant_id))
            self.terms["clawback_credits"] += rate * points

    def result(self) -> dict[str, Decimal]:
        t = self.terms
        if self.prefunded:
            outcome = t["issue_revenue"] - t["reimbursements"] - t["clawback_credits"]
        else:
            outcome = (
                t["fees"]
                + t["debt_recovered"]
                - t["operator_funded_redeemed"]
                - t["clawback_credits"]
            )
        return {**t, "result": outcome}


def decimal_text(amount: Decimal, digits: int = 2) -> str:
    """An exact amount as a plain decimal string with at least the currency's minor digits
    (`"1.00"`, `"-1.125"`), never an exponent and never rounded."""
    exact = amount.normalize()
    if exact.as_tuple().exponent > -digits:  # type: ignore[operator]
        exact = exact.quantize(Decimal(1).scaleb(-digits))
    return format(exact, "f")


def components_json(position: Position) -> dict[str, dict[str, Any]]:
    return {
        kind: {"points": c.points, "amount": decimal_text(c.amount)}
        for kind, c in sorted(position.components.items())
        if c.points or c.amount
    }
