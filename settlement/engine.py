"""Pricing one business day (SPEC 2, money flows): what each merchant owes and is owed, the
issuer x redeemer flows, and the operator's result computed a second way, by its terms.

The ledger is read set-based and once: one statement sums the day's award transfers and lot
consumptions by kind and issuer x redeemer account into a temporary table (`stage`); from it the
flows are written by one INSERT … SELECT and the totals are read by merchant (a few rows each),
which Python prices. No loop ever runs over transfers or pairs of merchants, so a run's memory
does not grow with the day's traffic or the size of the coalition's matrix.

Orders from the rewards catalogue and prize draw entries (issue 15) are redemptions with a
`purpose`: a second, small query (through a partial index on the day's purposeful transactions)
sums their lot consumptions, which are taken out of the day's till redemptions and priced as
their own lines; the orders reimbursed at their cost price are summed from the orders table.

Signs: `net = owed - receivable`; positive, the merchant pays the operator. Amounts are exact
`Decimal`s in major units; rounding happens once, on the monthly statement."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import and_, func, insert, select, text
from sqlalchemy.orm import Session

from coalition.database import UTCDateTime, table
from coalition.economics import MINOR_UNIT_DIGITS, Terms
from coalition.ledger.models import Account, LotConsumption, Transaction, Transfer
from rewards.models import Order
from settlement.models import SettlementFlow

accounts = table(Account)
transactions = table(Transaction)
transfers = table(Transfer)
consumptions = table(LotConsumption)
orders = table(Order)
flows = table(SettlementFlow)

ZERO = Decimal(0)
# Components of a position, by side. Each is {"points", "amount"}; their amounts add up to
# `owed` (what the merchant pays) and `receivable` (what it is paid). A statement lists them in
# this order. Issue 15: a supplier's orders (`reward_orders…`, reimbursed at the point value or,
# `…_at_cost`, at their cost price) and their cancellations; under `on_redemption`, an issuer's
# points spent on rewards (`reward_charges`, at a partner or the operator) and on prize draw
# entries (`draw_entries`), and the reversals of those.
OWED = (
    "issue_charges",
    "redemption_charges",
    "reward_charges",
    "draw_entries",
    "reversal_debits",
    "reward_order_cancellations",
    "reward_order_cancellations_at_cost",
    "debt_repayments",
)
RECEIVABLE = (
    "reimbursements",
    "reward_orders",
    "reward_orders_at_cost",
    "clawback_credits",
    "reversal_credits",
    "reward_charge_reversals",
    "draw_entry_reversals",
)
# A purposeful redemption's issuer-side line under `on_redemption`, and its reversal's.
ISSUER_LINES = {
    "order": ("reward_charges", "reward_charge_reversals"),
    "draw_entry": ("draw_entries", "draw_entry_reversals"),
}


@dataclass
class Component:
    points: int = 0
    amount: Decimal = ZERO

    def add(self, points: int, amount: Decimal) -> None:
        self.points += points
        self.amount += amount


@dataclass
class Position:
    """One merchant's day. `issued`: points it awarded that day, pending or not; `confirmed`:
    points counted as issued that day (SPEC 2, Pending points): its awards without a window
    and its pending points confirmed that day, less none cancelled (a refund inside the window
    cancels points before they are ever counted). Issue charges are on `confirmed`."""

    issued: int = 0
    confirmed: int = 0
    redeemed: int = 0
    expired: int = 0
    clawed_back: int = 0
    reversed: int = 0
    components: dict[str, Component] = field(default_factory=lambda: defaultdict(Component))

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
        counts = (
            self.issued,
            self.confirmed,
            self.redeemed,
            self.expired,
            self.clawed_back,
            self.reversed,
        )
        return not any(counts) and not any(c.points or c.amount for c in self.components.values())


@dataclass(frozen=True)
class Sum:
    """One per-merchant total of the day: the points of one kind of movement on one side of it.
    `side` "issuer": the lots' issuer (or, for awards, the funder); "redeemer": the account the
    points went to. `merchant` is that side's merchant, None for the operator (or, as an issuer,
    a clawback no lot covered); `own`: issuer and redeemer are the same merchant; `to_merchant`
    (issuer side): the points went to a merchant, not the operator. `purpose` (kinds redeem and
    restore): what the redemption paid for (`order`, `draw_entry`), None for a till's."""

    side: str
    kind: str
    merchant: int | None
    own: bool
    to_merchant: bool
    points: int
    purpose: str | None = None


@dataclass(frozen=True)
class CostPriced:
    """A supplier's orders of the day reimbursed at their cost price (`kind` redeem), or
    cancelled (`kind` restore): their points and their cost prices' sum in minor units."""

    merchant: int
    kind: str
    points: int
    cost_minor: int


@dataclass(frozen=True)
class Totals:
    """The ledger's totals for a window, by merchant: what a run prices. Merchants are named by
    id; None is the operator (or, as an issuer, a clawback no lot covered)."""

    # merchant id -> points it issued (award transfers it funded), pending or not
    issued: Mapping[int, int]
    # merchant id -> points counted as issued: awards without a pending window, and pending
    # points confirmed (SPEC 2, Pending points)
    confirmed: Mapping[int, int]
    # merchant id -> points of its refunds' clawbacks that it had already paid for
    paid_back: Mapping[int, int]
    # operator-funded points awarded (welcome and tier bonuses), and of them counted as issued
    operator_issued: int
    operator_confirmed: int
    # lot consumptions of kind redeem, restore, repay, expire and clawback (debt counted as
    # clawback), summed by merchant on each side: a few rows per merchant, whatever the day
    consumed: Sequence[Sum]
    # the day's orders (and cancellations) of partners' rewards that have a cost price
    cost_priced: Sequence[CostPriced] = ()


@dataclass
class Day:
    positions: dict[int, Position]
    operator: dict[str, Decimal]

    @property
    def nets(self) -> Decimal:
        return sum((p.net for p in self.positions.values()), ZERO)


# The day's movements, summed by kind and issuer x redeemer account: made by `stage` in one
# read of the day's award transfers and lot consumptions, then read by `read_totals` and
# `write_flows`, and dropped by `unstage` before the run commits. A temporary table, so that the
# ledger is read once however many ways the day is summed (CREATE TABLE AS may also use
# PostgreSQL's parallel workers, which INSERT … SELECT may not).
DAY_TABLE = "settlement_day"
day_rows = sa.table(
    DAY_TABLE,
    sa.column("kind", sa.String()),
    sa.column("issuer", sa.BigInteger()),
    sa.column("redeemer", sa.BigInteger()),
    sa.column("points", sa.BigInteger()),
)
# A day's hash tables are a few rows per merchant (or pair): enough memory that PostgreSQL
# hashes the groups instead of sorting every row to disk (its group estimates are far too high).
WORK_MEM = "64MB"


# Merchants' accounts, found through the unique index on `merchant_id` (a merchant's account is
# the only kind that has one) rather than by reading every member's account for its kind.
MERCHANT = accounts.c.merchant_id.is_not(None)


def stage(session: Session, start: datetime, end: datetime) -> None:
    """Sum the day's rows dated in [start, end) into the day table, reading each table once.
    Call `unstage` before the transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    window = [
        sa.bindparam("start", start, type_=UTCDateTime()),
        sa.bindparam("end", end, type_=UTCDateTime()),
    ]
    session.execute(
        text(
            f"CREATE TEMPORARY TABLE {DAY_TABLE} AS"
            " SELECT kind, debit_account_id AS issuer, CAST(NULL AS BIGINT) AS redeemer,"
            "  CAST(sum(amount) AS BIGINT) AS points"
            " FROM transfers WHERE created_at >= :start AND created_at < :end AND kind = 'award'"
            " GROUP BY kind, debit_account_id"
            " UNION ALL"
            # SPEC 2, Pending points: of the day's awards, those pending (counted as issued
            # when their `confirm` consumption is dated), through a small partial index.
            " SELECT 'pending', issuer_account_id, CAST(NULL AS BIGINT),"
            "  CAST(sum(points) AS BIGINT)"
            " FROM lots WHERE created_at >= :start AND created_at < :end"
            "  AND pending_until IS NOT NULL"
            " GROUP BY issuer_account_id"
            " UNION ALL"
            " SELECT kind, issuer_account_id, redeemer_account_id, CAST(sum(points) AS BIGINT)"
            " FROM lot_consumptions WHERE created_at >= :start AND created_at < :end"
            " GROUP BY kind, issuer_account_id, redeemer_account_id"
        ).bindparams(*window)
    )


def unstage(session: Session) -> None:
    session.execute(text(f"DROP TABLE {DAY_TABLE}"))


def read_totals(session: Session, start: datetime, end: datetime) -> Totals:
    """The staged day's totals by merchant (a few rows each), and its refunds' paid-back points
    (a query over the refunds dated in [start, end))."""
    query = select(accounts.c.id, accounts.c.merchant_id).where(MERCHANT)
    merchant_of: dict[int, int] = {a: m for a, m in session.execute(query)}
    to_merchant = day_rows.c.redeemer.in_(select(accounts.c.id).where(MERCHANT).scalar_subquery())
    own = sa.case((day_rows.c.issuer == day_rows.c.redeemer, 1), else_=0)
    points = sa.cast(func.sum(day_rows.c.points), sa.BigInteger)
    by_issuer = select(
        sa.literal("issuer"), day_rows.c.kind, day_rows.c.issuer, own, to_merchant, points
    ).group_by(day_rows.c.kind, day_rows.c.issuer, own, to_merchant)
    by_redeemer = (
        select(sa.literal("redeemer"), day_rows.c.kind, day_rows.c.redeemer, own, sa.true(), points)
        .where(day_rows.c.kind.in_(("redeem", "restore", "clawback", "debt")))
        .group_by(day_rows.c.kind, day_rows.c.redeemer, own)
    )
    issued: dict[int, int] = defaultdict(int)
    confirmed: dict[int, int] = defaultdict(int)
    operator_issued = operator_confirmed = 0
    # (side, kind, merchant, own, to_merchant, purpose) -> points
    consumed: Counter[tuple[str, str, int | None, bool, bool, str | None]] = Counter()
    # Counted as issued: every award, less the pending ones, plus the pending confirmed.
    counted = {"award": 1, "pending": -1, "confirm": 1}
    for side, kind, account_id, is_own, goes_to_merchant, total in session.execute(
        sa.union_all(by_issuer, by_redeemer)
    ):
        merchant_id = merchant_of.get(account_id)
        if kind in counted:
            signed = counted[kind] * int(total)
            if merchant_id is None:
                operator_issued += int(total) if kind == "award" else 0
                operator_confirmed += signed
            else:
                issued[merchant_id] += int(total) if kind == "award" else 0
                confirmed[merchant_id] += signed
            continue
        if kind == "cancel":
            # Points a refund cancelled inside their window: never issued, no money moves.
            continue
        # A debt record (no lot) is a clawback the member could not cover: count it as clawed.
        kind = "clawback" if kind == "debt" else kind
        consumed[(side, kind, merchant_id, bool(is_own), bool(goes_to_merchant), None)] += int(
            total
        )
    # Orders and draw entries: out of the till's redemptions, into their own sums.
    for key, moved in _purposeful(session, start, end, merchant_of).items():
        till = (key[0], key[1], key[2], key[3], key[4], None)
        if consumed[till] < moved:
            raise AssertionError(f"the day's redemptions {till} do not cover its {key}")
        consumed[till] -= moved
        consumed[key] += moved
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
        issued=dict(issued),
        confirmed=dict(confirmed),
        paid_back={m: int(p) for m, p in paid_back.items()},
        operator_issued=operator_issued,
        operator_confirmed=operator_confirmed,
        consumed=[Sum(*key[:5], points, key[5]) for key, points in consumed.items() if points],
        cost_priced=_cost_priced(session, start, end),
    )


def _purposeful(
    session: Session, start: datetime, end: datetime, merchant_of: Mapping[int, int]
) -> Counter[tuple[str, str, int | None, bool, bool, str | None]]:
    """The lot consumptions (redeem, restore) of the day's orders and draw entries and of their
    reversals, summed as `read_totals` sums the day's on each side, by purpose. The day's
    purposeful transactions are found through their partial index: a few rows, whatever the
    day's number of till redemptions."""
    rows = session.execute(
        select(
            consumptions.c.kind,
            consumptions.c.issuer_account_id,
            consumptions.c.redeemer_account_id,
            transactions.c.purpose,
            sa.cast(func.sum(consumptions.c.points), sa.BigInteger),
        )
        .select_from(transactions)
        .join(transfers, transfers.c.transaction_id == transactions.c.id)
        .join(consumptions, consumptions.c.transfer_id == transfers.c.id)
        .where(
            transactions.c.purpose.is_not(None),
            transactions.c.created_at >= start,
            transactions.c.created_at < end,
            consumptions.c.created_at >= start,
            consumptions.c.created_at < end,
            consumptions.c.kind.in_(("redeem", "restore")),
        )
        .group_by(
            consumptions.c.kind,
            consumptions.c.issuer_account_id,
            consumptions.c.redeemer_account_id,
            transactions.c.purpose,
        )
    ).all()
    found: Counter[tuple[str, str, int | None, bool, bool, str | None]] = Counter()
    for kind, issuer, redeemer, purpose, points in rows:
        own = issuer == redeemer
        to_merchant = redeemer in merchant_of
        found[("issuer", kind, merchant_of.get(issuer), own, to_merchant, purpose)] += int(points)
        found[("redeemer", kind, merchant_of.get(redeemer), own, True, purpose)] += int(points)
    return found


def _cost_priced(session: Session, start: datetime, end: datetime) -> list[CostPriced]:
    """The day's orders of partners' rewards with a cost price, and their cancellations (the
    reversal of the order's redemption), summed by supplier."""
    placed = (
        select(
            orders.c.merchant_id,
            sa.literal("redeem").label("kind"),
            transactions.c.points,
            orders.c.cost_price_minor,
        )
        .select_from(transactions)
        .join(orders, orders.c.transaction_id == transactions.c.id)
        .where(transactions.c.type == "redeem")
    )
    cancelled = (
        select(
            orders.c.merchant_id,
            sa.literal("restore").label("kind"),
            transactions.c.points,
            orders.c.cost_price_minor,
        )
        .select_from(transactions)
        .join(orders, orders.c.transaction_id == transactions.c.original_id)
        .where(transactions.c.type == "reversal")
    )
    in_day = (
        transactions.c.purpose == "order",
        transactions.c.created_at >= start,
        transactions.c.created_at < end,
        orders.c.cost_price_minor.is_not(None),
        orders.c.merchant_id.is_not(None),
    )
    both = sa.union_all(placed.where(*in_day), cancelled.where(*in_day)).subquery()
    rows = session.execute(
        select(
            both.c.merchant_id,
            both.c.kind,
            sa.cast(func.sum(both.c.points), sa.BigInteger),
            sa.cast(func.sum(both.c.cost_price_minor), sa.BigInteger),
        )
        .group_by(both.c.merchant_id, both.c.kind)
        .order_by(both.c.merchant_id, both.c.kind)
    ).all()
    return [CostPriced(int(m), str(k), int(p), int(c)) for m, k, p, c in rows]


def write_flows(session: Session, run_id: int, value: Decimal, digits: int) -> None:
    """The staged day's issuer x redeemer flows (points net of reversals, and their value at
    `value` a point, written as `decimal_text` writes it), one INSERT … SELECT, in the order of
    the issuer's and redeemer's accounts; a pair whose points net to nothing has no flow."""
    signed = sa.case((day_rows.c.kind == "restore", -day_rows.c.points), else_=day_rows.c.points)
    pairs = (
        select(
            day_rows.c.issuer,
            day_rows.c.redeemer,
            sa.cast(func.sum(signed), sa.BigInteger).label("points"),
        )
        .where(day_rows.c.kind.in_(("redeem", "restore", "repay")))
        .group_by(day_rows.c.issuer, day_rows.c.redeemer)
        .subquery()
    )
    issuer = accounts.alias("issuer")
    redeemer = accounts.alias("redeemer")
    merchant = lambda a, column: sa.and_(a.c.id == column, a.c.kind == "merchant")  # noqa: E731
    rows = (
        select(
            sa.literal(run_id, sa.BigInteger),
            issuer.c.merchant_id,
            redeemer.c.merchant_id,
            pairs.c.points,
            amount_sql(pairs.c.points, value, digits),
        )
        .select_from(
            pairs.outerjoin(issuer, merchant(issuer, pairs.c.issuer)).outerjoin(
                redeemer, merchant(redeemer, pairs.c.redeemer)
            )
        )
        .where(pairs.c.points != 0)
        .order_by(pairs.c.issuer, pairs.c.redeemer)
    )
    columns = ["run_id", "issuer_merchant_id", "redeemer_merchant_id", "points", "amount"]
    session.execute(insert(flows).from_select(columns, rows))


def amount_sql(points: Any, value: Decimal, digits: int) -> Any:
    """`decimal_text(value * points, digits)` as a SQL expression, in integers and text only
    (exact on both backends): the integer `points x units` is written with `scale` decimals,
    then the decimals past the currency's `digits` lose their trailing zeros."""
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int), "a point's value is a finite decimal"
    scale = max(-exponent, digits)
    units = int(value.scaleb(scale))  # value = units / 10**scale, exactly
    product = points * sa.literal(units, sa.BigInteger)
    size = sa.literal(10**scale, sa.BigInteger)
    magnitude = func.abs(product, type_=sa.BigInteger)
    whole = sa.cast(magnitude // size, sa.String)
    # 10**scale + remainder, less its leading 1: the remainder padded with zeros to `scale`.
    decimals = func.substr(sa.cast(size + magnitude % size, sa.String), 2)
    kept = func.substr(decimals, 1, digits).concat(
        func.rtrim(func.substr(decimals, digits + 1), "0")
    )
    sign = sa.case((product < 0, "-"), else_="")
    return sa.case(
        (kept == "", sign.concat(whole)), else_=sign.concat(whole).concat(".").concat(kept)
    )


def price(totals: Totals, base: Terms, terms_of: Mapping[int, Terms]) -> Day:
    """Price a day's totals under the coalition's terms `base` (currency, point value, funding
    model) and each issuer's own (`terms_of`, for issue price and fee)."""
    positions: dict[int, Position] = defaultdict(Position)
    book = OperatorBook(base, terms_of)
    value = base.point_value
    prefunded = base.funding_model == "prefunded"

    def issuer_terms(merchant_id: int) -> Terms:
        return terms_of.get(merchant_id, base)

    for merchant_id, points in totals.issued.items():
        positions[merchant_id].issued += points
    for merchant_id, points in totals.confirmed.items():
        if not points:
            continue
        positions[merchant_id].confirmed += points
        book.issued(merchant_id, points)
        if prefunded:
            charge = issuer_terms(merchant_id).issue_price * points
            positions[merchant_id].components["issue_charges"].add(points, charge)

    for total in totals.consumed:
        book.consumed(total)
        kind, merchant, points = total.kind, total.merchant, total.points
        if merchant is None:
            continue
        if total.side == "issuer":
            if kind == "expire":
                positions[merchant].expired += points
            elif kind == "repay" and not prefunded:
                # SPEC 2: a debt repaid from a new lot is a redemption of it at the operator.
                rate = value * (1 + issuer_terms(merchant).operator_fee_rate)
                positions[merchant].components["debt_repayments"].add(points, rate * points)
            elif kind in ("redeem", "restore") and (
                total.purpose is not None or not total.to_merchant
            ):
                # Issue 15, `on_redemption`: A's points spent on a reward (at a partner, A
                # itself included, or at the operator) or on a draw entry (at the operator): A
                # owes value x (1 + fee), as for a debt repaid at the operator (prefunded, A
                # paid when it issued them). Its own orders gross: the supplier's side is owed
                # the order's reimbursement, so A's net is the fee when that is at the value.
                if not prefunded:
                    charge = value * (1 + issuer_terms(merchant).operator_fee_rate) * points
                    lines = ISSUER_LINES.get(total.purpose or "order", ISSUER_LINES["order"])
                    line = lines[0] if kind == "redeem" else lines[1]
                    positions[merchant].components[line].add(points, charge)
            elif kind in ("redeem", "restore") and total.to_merchant and not total.own:
                # SPEC 2, `on_redemption`: A's points spent at B: A owes value x (1 + fee)
                # (prefunded, A paid for its points when it issued them).
                charge = value * (1 + issuer_terms(merchant).operator_fee_rate) * points
                side = "redemption_charges" if kind == "redeem" else "reversal_credits"
                if not prefunded:
                    positions[merchant].components[side].add(points, charge)
            continue
        if kind == "clawback":
            # The credited party (a merchant, or the operator for its own bonuses).
            positions[merchant].clawed_back += points
            if prefunded:
                credit = issuer_terms(merchant).issue_price * points
                positions[merchant].components["clawback_credits"].add(points, credit)
            continue
        if total.purpose is not None:
            _price_order(positions[merchant], total, value)
            continue
        _price_on_redemption(positions, total, value, prefunded, issuer_terms)

    quantum = Decimal(1).scaleb(-MINOR_UNIT_DIGITS[base.currency])
    for order in totals.cost_priced:
        # Reimbursed at the cost price instead of the value: those points move to their own
        # line (the operator keeps or bears the difference: `reward_margin`).
        cost = order.cost_minor * quantum
        book.cost_priced(order.kind, order.points, cost)
        at_value, at_cost = (
            ("reward_orders", "reward_orders_at_cost")
            if order.kind == "redeem"
            else ("reward_order_cancellations", "reward_order_cancellations_at_cost")
        )
        components = positions[order.merchant].components
        components[at_value].add(-order.points, -value * order.points)
        components[at_cost].add(order.points, cost)

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


def _price_order(position: Position, total: Sum, value: Decimal) -> None:
    """The supplier's side of an order of its reward (issue 15), or of the order's cancel: a
    redemption at it, reimbursed at the point value in both models, whoever issued the points
    (`price` then moves the orders that have a cost price to their own line, at it)."""
    if total.kind == "redeem":
        position.redeemed += total.points
        position.components["reward_orders"].add(total.points, value * total.points)
    else:
        position.reversed += total.points
        position.components["reward_order_cancellations"].add(total.points, value * total.points)


def _price_on_redemption(
    positions: dict[int, Position],
    total: Sum,
    value: Decimal,
    prefunded: bool,
    issuer_terms: Any,
) -> None:
    """The redeemer's side of a redemption (or of its reversal, `restore`). Prefunded: the
    operator reimburses the value. Otherwise SPEC 2, `on_redemption`: when A's points are spent
    at B, B is owed value (A's charge is priced on the issuer's side); if A is B, A owes only
    the fee. A reversal undoes exactly what its redemption priced."""
    redeemed = total.kind == "redeem"
    redeemer, points = total.merchant, total.points
    assert redeemer is not None
    position = positions[redeemer]
    if redeemed:
        position.redeemed += points
    else:
        position.reversed += points
    if total.own and not prefunded:
        fee = value * issuer_terms(redeemer).operator_fee_rate * points
        side = "redemption_charges" if redeemed else "reversal_credits"
        position.components[side].add(points, fee)
        return
    side = "reimbursements" if redeemed else "reversal_debits"
    position.components[side].add(points, value * points)


class OperatorBook:
    """SPEC 2: the operator's cash result decomposed by its terms, kept by kind of movement
    rather than from the positions: issue revenue + fees + debt recovered - reimbursements -
    clawback credits - operator-funded points redeemed (each where the model has it). `price`
    asserts that the positions' nets add up to its `result`.

    Issue 15 adds two terms: `redeemed_at_operator` (`on_redemption`: the value of merchants'
    points spent on the operator's own rewards and on draw entries, which their issuers pay the
    operator), and `reward_margin` (both models: the value of the points of orders reimbursed
    at their cost price, less that cost price; negative when the cost price is the higher)."""

    def __init__(self, base: Terms, terms_of: Mapping[int, Terms]) -> None:
        self.base, self.terms_of = base, terms_of
        self.prefunded = base.funding_model == "prefunded"
        names = (
            ("issue_revenue", "reimbursements", "clawback_credits", "reward_margin")
            if self.prefunded
            else (
                "fees",
                "debt_recovered",
                "redeemed_at_operator",
                "operator_funded_redeemed",
                "clawback_credits",
                "reward_margin",
            )
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

    def consumed(self, total: Sum) -> None:
        value, kind, merchant, points = (
            self.base.point_value,
            total.kind,
            total.merchant,
            total.points,
        )
        if total.side == "redeemer":
            if kind == "clawback" and merchant is not None and self.prefunded:
                self.terms["clawback_credits"] += self._issue_price(merchant) * points
            return
        if kind in ("redeem", "restore") and total.to_merchant:
            spent = points if kind == "redeem" else -points
            if self.prefunded:
                self.terms["reimbursements"] += value * spent
            else:
                self.terms["fees"] += value * self._fee(merchant) * spent
                if merchant is None:
                    self.terms["operator_funded_redeemed"] += value * spent
        elif kind in ("redeem", "restore") and not self.prefunded and merchant is not None:
            # A merchant's points spent at the operator (its rewards, draw entries).
            spent = points if kind == "redeem" else -points
            self.terms["fees"] += value * self._fee(merchant) * spent
            self.terms["redeemed_at_operator"] += value * spent
        elif kind == "repay" and not self.prefunded:
            self.terms["fees"] += value * self._fee(merchant) * points
            if merchant is not None:
                self.terms["debt_recovered"] += value * points

    def cost_priced(self, kind: str, points: int, cost: Decimal) -> None:
        """Orders (or, kind restore, their cancels) reimbursed at `cost` rather than the value
        of their `points`: the operator keeps (or bears) the difference."""
        margin = self.base.point_value * points - cost
        self.terms["reward_margin"] += margin if kind == "redeem" else -margin

    def paid_back(self, merchant_id: int, points: int) -> None:
        if not self.prefunded:
            rate = self.base.point_value * (1 + self._fee(merchant_id))
            self.terms["clawback_credits"] += rate * points

    def result(self) -> dict[str, Decimal]:
        t = self.terms
        if self.prefunded:
            outcome = (
                t["issue_revenue"]
                - t["reimbursements"]
                - t["clawback_credits"]
                + t["reward_margin"]
            )
        else:
            outcome = (
                t["fees"]
                + t["debt_recovered"]
                + t["redeemed_at_operator"]
                - t["operator_funded_redeemed"]
                - t["clawback_credits"]
                + t["reward_margin"]
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
