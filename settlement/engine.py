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
from collections.abc import Mapping
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


@dataclass(frozen=True)
class Totals:
    """The ledger's totals for a window, by party: what a run prices."""

    # merchant id -> points it issued (award transfers it funded)
    issued: Mapping[int, int]
    # (kind, issuer merchant id or None for the operator, redeemer merchant id or None) -> points,
    # for lot consumptions of kind redeem, restore, repay, expire, clawback (+ debt)
    consumed: Mapping[tuple[str, int | None, int | None], int]
    # merchant id -> points of its refunds' clawbacks that it had already paid for
    paid_back: Mapping[int, int]
    # operator-funded points awarded (welcome and tier bonuses)
    operator_issued: int


@dataclass
class Day:
    positions: dict[int, Position]
    flows: dict[tuple[int | None, int | None], tuple[int, Decimal]]
    operator: dict[str, Decimal]

    @property
    def nets(self) -> Decimal:
        return sum((p.net for p in self.positions.values()), ZERO)


def read_totals(session: Session, start: datetime, end: datetime) -> Totals:
    """The day's ledger totals: three aggregate queries over the rows dated in [start, end)."""
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
    # A debt record (no lot) is a clawback the member could not cover: count it as clawed.
    kind = func.replace(consumptions.c.kind, "debt", "clawback")
    consumed_rows = session.execute(
        select(
            kind,
            consumptions.c.issuer_account_id,
            consumptions.c.redeemer_account_id,
            func.sum(consumptions.c.points),
        )
        .where(consumptions.c.created_at >= start, consumptions.c.created_at < end)
        .group_by(kind, consumptions.c.issuer_account_id, consumptions.c.redeemer_account_id)
    ).all()
    consumed: dict[tuple[str, int | None, int | None], int] = defaultdict(int)
    for row_kind, issuer, redeemer, points in consumed_rows:
        consumed[(row_kind, merchant_of.get(issuer), merchant_of.get(redeemer))] += int(points)
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
    return Totals(
        issued=issued,
        consumed=dict(consumed),
        paid_back={m: int(p) for m, p in paid_back.items()},
        operator_issued=operator_issued,
    )


def price(totals: Totals, base: Terms, terms_of: Mapping[int, Terms]) -> Day:
    """Price a day's totals under the coalition's terms `base` (currency, point value, funding
    model) and each issuer's own (`terms_of`, for issue price and fee)."""
    positions: dict[int, Position] = defaultdict(Position)
    flows: dict[tuple[int | None, int | None], list[Any]] = defaultdict(lambda: [0, ZERO])
    value = base.point_value
    prefunded = base.funding_model == "prefunded"

    def issuer_terms(merchant_id: int) -> Terms:
        return terms_of.get(merchant_id, base)

    for merchant_id, points in totals.issued.items():
        positions[merchant_id].issued += points
        if prefunded:
            charge = issuer_terms(merchant_id).issue_price * points
            positions[merchant_id].components["issue_charges"].add(points, charge)

    for (kind, issuer, redeemer), points in sorted(totals.consumed.items(), key=_order):
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
        sign = -1 if kind == "restore" else 1
        flow = flows[(issuer, redeemer)]
        flow[0] += sign * points
        flow[1] += sign * value * points
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

    if not prefunded:
        for merchant_id, points in totals.paid_back.items():
            rate = value * (1 + issuer_terms(merchant_id).operator_fee_rate)
            positions[merchant_id].components["clawback_credits"].add(points, rate * points)

    kept = {m: p for m, p in positions.items() if not p.is_empty()}
    day = Day(
        positions=kept,
        flows={pair: (int(f[0]), f[1]) for pair, f in flows.items() if f[0]},
        operator=operator_result(totals, base, terms_of),
    )
    if day.nets != day.operator["result"]:
        raise AssertionError(
            f"money is not conserved: nets add up to {day.nets}, "
            f"the operator's result is {day.operator['result']}"
        )
    return day


def _order(item: tuple[tuple[str, int | None, int | None], int]) -> tuple[str, int, int]:
    (kind, issuer, redeemer), _ = item
    return (kind, issuer or 0, redeemer or 0)


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
        positions[issuer].components[side].add(points, fee)
        return
    side = "reimbursements" if redeemed else "reversal_debits"
    positions[redeemer].components[side].add(points, value * points)
    if issuer is not None:
        charge = value * (1 + issuer_terms(issuer).operator_fee_rate) * points
        side = "redemption_charges" if redeemed else "reversal_credits"
        positions[issuer].components[side].add(points, charge)


def operator_result(
    totals: Totals, base: Terms, terms_of: Mapping[int, Terms]
) -> dict[str, Decimal]:
    """SPEC 2: the operator's cash result decomposed by its terms, computed from the totals by
    kind of movement rather than from the positions: issue revenue + fees + debt recovered -
    reimbursements - clawback credits - operator-funded points redeemed (each where the model
    has it). `price` asserts that the positions' nets add up to its `result`."""
    value = base.point_value

    def fee(merchant_id: int | None) -> Decimal:
        return ZERO if merchant_id is None else terms_of.get(merchant_id, base).operator_fee_rate

    def issue_price(merchant_id: int) -> Decimal:
        return terms_of.get(merchant_id, base).issue_price

    spent: dict[tuple[int | None, int], int] = defaultdict(int)  # net points spent at shops
    repaid: dict[int | None, int] = defaultdict(int)  # issuer -> points repaying debts
    clawed: dict[int, int] = defaultdict(int)  # credited merchant -> points
    for (kind, issuer, redeemer), points in totals.consumed.items():
        if kind in ("redeem", "restore") and redeemer is not None:
            spent[(issuer, redeemer)] += points if kind == "redeem" else -points
        elif kind == "repay":
            repaid[issuer] += points
        elif kind == "clawback" and redeemer is not None:
            clawed[redeemer] += points
    terms: dict[str, Decimal] = {}
    if base.funding_model == "prefunded":
        terms["issue_revenue"] = sum((issue_price(m) * p for m, p in totals.issued.items()), ZERO)
        terms["reimbursements"] = value * sum(spent.values())
        terms["clawback_credits"] = sum((issue_price(m) * p for m, p in clawed.items()), ZERO)
        terms["result"] = (
            terms["issue_revenue"] - terms["reimbursements"] - terms["clawback_credits"]
        )
        return terms
    terms["fees"] = sum((value * fee(i) * p for (i, _), p in spent.items()), ZERO) + sum(
        (value * fee(i) * p for i, p in repaid.items()), ZERO
    )
    terms["debt_recovered"] = value * sum(p for i, p in repaid.items() if i is not None)
    terms["operator_funded_redeemed"] = value * sum(p for (i, _), p in spent.items() if i is None)
    terms["clawback_credits"] = sum(
        (value * (1 + fee(m)) * p for m, p in totals.paid_back.items()), ZERO
    )
    terms["result"] = (
        terms["fees"]
        + terms["debt_recovered"]
        - terms["operator_funded_redeemed"]
        - terms["clawback_credits"]
    )
    return terms


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
