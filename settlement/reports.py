"""The operator's reports (SPEC 3.5): a month's issuer x redeemer flow matrix, the coalition's
liability (points outstanding and their value) and breakage (points expired) to date, the
month's revenue from premium memberships (paid to the operator, outside settlement), and the
rewards redeemed per supplier and the prize draws' entries (issue 15)."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coalition import clock, economics
from coalition.database import table
from coalition.economics import Terms
from coalition.ledger.models import Account, Lot, LotConsumption, Transaction
from coalition.members import premium
from merchants.models import Merchant
from settlement import business_days, engine
from settlement.models import SettlementFlow, SettlementPosition, SettlementRun
from settlement.money import OPERATOR, major, money
from settlement.runs import settled_between
from settlement.statements import check_month

runs = table(SettlementRun)
flow_rows = table(SettlementFlow)
positions = table(SettlementPosition)
merchants = table(Merchant)
accounts = table(Account)
lots = table(Lot)
consumptions = table(LotConsumption)
transactions = table(Transaction)

# A supplier's order lines in its positions (engine.py): what it was reimbursed, and taken back.
ORDER_LINES = {
    "reward_orders": 1,
    "reward_orders_at_cost": 1,
    "reward_order_cancellations": -1,
    "reward_order_cancellations_at_cost": -1,
}
DRAW_LINES = {"draw_entries": 1, "draw_entry_reversals": -1}


def flows(session: Session, month: str) -> dict[str, Any]:
    """The month's final runs added up: points of each issuer spent at each redeemer (net of
    reversals; the operator stands for its own bonuses and for debts repaid, draw entries and
    its own rewards) and their value,
    and each merchant's balance of trade: others' points it took in less its own spent
    elsewhere."""
    first, last = check_month(session, month)
    in_month = (settled_between(first, last),)
    rows = session.execute(
        select(
            flow_rows.c.issuer_merchant_id,
            flow_rows.c.redeemer_merchant_id,
            flow_rows.c.points,
            flow_rows.c.amount,
        )
        .join(runs, runs.c.id == flow_rows.c.run_id)
        .where(*in_month)
    ).all()
    matrix: dict[tuple[int | None, int | None], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for row in rows:
        cell = matrix[(row.issuer_merchant_id, row.redeemer_merchant_id)]
        cell[0] += row.points
        cell[1] += Decimal(row.amount)
    # Every merchant with a position in the month, whether or not its points travelled.
    active = session.execute(
        select(positions.c.merchant_id)
        .join(runs, runs.c.id == positions.c.run_id)
        .where(*in_month)
        .distinct()
    ).scalars()
    ids = {i for pair in matrix for i in pair if i is not None} | set(active)
    names = {
        row.id: (row.public_id, row.name)
        for row in session.execute(
            select(merchants.c.id, merchants.c.public_id, merchants.c.name).where(
                merchants.c.id.in_(ids)
            )
        )
    }
    terms = economics.coalition_terms(session, last)
    digits = economics.MINOR_UNIT_DIGITS[terms.currency]
    trade: dict[int, int] = defaultdict(int)
    for (issuer, redeemer), (points, _) in matrix.items():
        if issuer != redeemer:
            if redeemer is not None:
                trade[redeemer] += points
            if issuer is not None:
                trade[issuer] -= points

    def party(merchant_id: int | None) -> dict[str, str]:
        if merchant_id is None:
            return dict(OPERATOR)
        public_id, name = names[merchant_id]
        return {"id": public_id, "name": name}

    return {
        "month": month,
        "currency": terms.currency,
        "merchants": [
            {"id": public_id, "name": name, "balance_of_trade": trade.get(merchant_id, 0)}
            for merchant_id, (public_id, name) in sorted(names.items())
        ],
        "flows": [
            {
                "issuer": party(issuer),
                "redeemer": party(redeemer),
                "points": points,
                "amount": engine.decimal_text(amount, digits),
            }
            for (issuer, redeemer), (points, amount) in sorted(
                matrix.items(), key=lambda item: (item[0][0] or 0, item[0][1] or 0)
            )
            if points
        ],
    }


def liability(session: Session, terms: Terms) -> dict[str, Any]:
    """Now: the points members hold in open lots (by issuer) and what they are worth at today's
    point value, the debts members owe, and every point that ever expired (breakage). Open lots
    hold each member's balance plus its debt (`verify-ledger`'s `open_lots`)."""
    by_issuer = session.execute(
        select(
            lots.c.issuer_account_id,
            accounts.c.merchant_id,
            func.coalesce(func.sum(lots.c.remaining), 0),
        )
        .join(accounts, accounts.c.id == lots.c.issuer_account_id)
        .where(lots.c.remaining > 0)
        .group_by(lots.c.issuer_account_id, accounts.c.merchant_id)
    ).all()
    debt = session.execute(
        select(func.coalesce(func.sum(accounts.c.debt), 0)).where(accounts.c.kind == "member")
    ).scalar_one()
    expired = session.execute(
        select(func.coalesce(func.sum(consumptions.c.points), 0)).where(
            consumptions.c.kind == "expire"
        )
    ).scalar_one()
    issuers: dict[int | None, dict[str, str]] = {
        row.id: {"id": row.public_id, "name": row.name}
        for row in session.execute(
            select(merchants.c.id, merchants.c.public_id, merchants.c.name).where(
                merchants.c.id.in_([row.merchant_id for row in by_issuer if row.merchant_id])
            )
        )
    }

    def value(points: int) -> dict[str, Any]:
        """Rounded half-even to minor units, so money (decision 94)."""
        return money(economics.value_minor(points, terms), terms.currency)

    outstanding = sum(int(row[2]) for row in by_issuer)
    return {
        "outstanding_points": outstanding,
        "value": value(outstanding),
        "debt_points": int(debt),
        "breakage": {"points": int(expired), "value": value(int(expired))},
        "by_issuer": [
            {
                "issuer": issuers.get(row.merchant_id, dict(OPERATOR)),
                "points": int(row[2]),
                "value": value(int(row[2])),
            }
            for row in sorted(by_issuer, key=lambda r: r.issuer_account_id)
        ],
    }


def premium_revenue(session: Session, month: str, currency: str) -> dict[str, Any]:
    """The month's premium memberships (SPEC 2), the operator's own revenue: how many were paid
    in the month's business days and for how much, and how many of them (or of earlier
    months') were refunded in it, in the coalition's currency."""
    first, last = check_month(session, month)
    zone = business_days.zone()
    start = clock.end_of_business_date(first - timedelta(days=1), zone)
    end = clock.end_of_business_date(last, zone)
    found = next(
        (line for line in premium.revenue(session, start, end) if line["currency"] == currency),
        None,
    )
    line = found or {"count": 0, "amount_minor": 0, "refunded_count": 0, "refunded_minor": 0}
    net = line["amount_minor"] - line["refunded_minor"]
    return {
        "count": line["count"],
        "amount": major(money(line["amount_minor"], currency)),
        "refunded_count": line["refunded_count"],
        "refunded": major(money(line["refunded_minor"], currency)),
        "net": major(money(net, currency)),
    }


def rewards_redeemed(
    session: Session, month: str, components: list[tuple[int, dict[str, Any]]], digits: int
) -> dict[str, Any]:
    """The month's settled days' rewards per supplier (a partner, or the operator for its own):
    orders placed and cancelled, their points net of the cancels, and what the supplier was
    reimbursed for them, net (exact, from its positions' order lines, `components`: each day's
    (merchant, components)); the operator reimburses nobody for its own rewards (`None`). And
    the prize draws' entries: how many, how many refunded, their points net, and what the
    points' issuers were charged for them (`on_redemption`; prefunded, nothing: they paid when
    they issued the points). Counted from the ledger in the settled days' windows."""
    first, last = check_month(session, month)
    settled = runs.alias("settled")
    rows = session.execute(
        select(
            transactions.c.merchant_id,
            transactions.c.purpose,
            transactions.c.type,
            func.count(),
            func.coalesce(func.sum(transactions.c.points), 0),
        )
        .join(
            settled,
            (transactions.c.created_at >= settled.c.window_start)
            & (transactions.c.created_at < settled.c.window_end),
        )
        .where(
            transactions.c.purpose.is_not(None),
            settled.c.kind == "final",
            settled.c.status == "succeeded",
            settled.c.business_date >= first,
            settled.c.business_date <= last,
        )
        .group_by(transactions.c.merchant_id, transactions.c.purpose, transactions.c.type)
    ).all()
    counted: dict[tuple[str, int | None], dict[str, int]] = defaultdict(
        lambda: {"placed": 0, "reversed": 0, "points": 0}
    )
    for merchant_id, purpose, kind, count, points in rows:
        cell = counted[(purpose, merchant_id)]
        placed = kind == "redeem"
        cell["placed" if placed else "reversed"] += int(count)
        cell["points"] += int(points) if placed else -int(points)
    reimbursed: dict[int, Decimal] = defaultdict(Decimal)
    charged = Decimal(0)
    for merchant_id, parts in components:
        for kind, part in parts.items():
            if kind in ORDER_LINES:
                reimbursed[merchant_id] += ORDER_LINES[kind] * Decimal(part["amount"])
            elif kind in DRAW_LINES:
                charged += DRAW_LINES[kind] * Decimal(part["amount"])
    suppliers = {m for purpose, m in counted if purpose == "order"} | set(reimbursed)
    names = {
        row.id: {"id": row.public_id, "name": row.name}
        for row in session.execute(
            select(merchants.c.id, merchants.c.public_id, merchants.c.name).where(
                merchants.c.id.in_([m for m in suppliers if m is not None])
            )
        )
    }
    text = lambda amount: engine.decimal_text(amount, digits)  # noqa: E731
    lines: list[dict[str, Any]] = []
    for merchant_id in suppliers:
        cell = counted[("order", merchant_id)]
        lines.append(
            {
                "supplier": dict(OPERATOR) if merchant_id is None else names[merchant_id],
                "orders": cell["placed"],
                "cancelled": cell["reversed"],
                "points": cell["points"],
                "reimbursed": None
                if merchant_id is None
                else text(reimbursed.get(merchant_id, Decimal(0))),
            }
        )
    lines.sort(key=lambda line: (-line["points"], line["supplier"]["name"], line["supplier"]["id"]))
    entries = counted[("draw_entry", None)]
    return {
        "suppliers": lines,
        "draw_entries": {
            "entries": entries["placed"],
            "refunded": entries["reversed"],
            "points": entries["points"],
            "charged": text(charged),
        },
    }


def month_report(session: Session, month: str) -> dict[str, Any]:
    """The operator's monthly report (SPEC 3.9): each merchant's month from its days' final
    positions (points issued and redeemed, owed, receivable and net, exact), the coalition's
    total, how many of the month's days are settled, and the month's flows (`flows`). Nets are
    exact sums; a statement rounds each once. `premium`: the month's premium revenue."""
    first, last = check_month(session, month)
    report = flows(session, month)
    rows = session.execute(
        select(
            positions.c.merchant_id,
            positions.c.issued,
            positions.c.redeemed,
            positions.c.owed,
            positions.c.receivable,
            positions.c.net,
            positions.c.components,
        )
        .join(runs, runs.c.id == positions.c.run_id)
        .where(settled_between(first, last))
    ).all()
    summed: dict[int, list[Any]] = {}
    for row in rows:
        cell = summed.setdefault(row.merchant_id, [0, 0, Decimal(0), Decimal(0), Decimal(0)])
        cell[0] += row.issued
        cell[1] += row.redeemed
        cell[2] += Decimal(row.owed)
        cell[3] += Decimal(row.receivable)
        cell[4] += Decimal(row.net)
    names = {
        row.id: (row.public_id, row.name)
        for row in session.execute(
            select(merchants.c.id, merchants.c.public_id, merchants.c.name).where(
                merchants.c.id.in_(list(summed))
            )
        )
    }
    digits = economics.MINOR_UNIT_DIGITS[report["currency"]]
    text = lambda amount: engine.decimal_text(amount, digits)  # noqa: E731
    settled_days = session.execute(
        select(func.count(runs.c.id)).where(settled_between(first, last))
    ).scalar_one()
    return {
        **report,
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "days": (last - first).days + 1,
        "settled_days": int(settled_days),
        "positions": [
            {
                "merchant": {"id": names[merchant_id][0], "name": names[merchant_id][1]},
                "issued": issued,
                "redeemed": redeemed,
                "owed": text(owed),
                "receivable": text(receivable),
                "net": text(net),
            }
            for merchant_id, (issued, redeemed, owed, receivable, net) in sorted(
                summed.items(), key=lambda item: (-item[1][4], names[item[0]][1], item[0])
            )
        ],
        "nets": text(sum((cell[4] for cell in summed.values()), Decimal(0))),
        "premium": premium_revenue(session, month, report["currency"]),
        "rewards": rewards_redeemed(
            session, month, [(row.merchant_id, row.components) for row in rows], digits
        ),
    }
