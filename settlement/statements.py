"""Monthly statements (SPEC 2, 3.5): each merchant's settled days added up by component, its net
rounded once, half-even, to minor units, with a rounding line so the lines add up to the total
to the cent; an opening carried from earlier statements whose payout failed (each carried once,
into the first statement made after the failure); and the closing that becomes a payment
instruction. Positive amounts are the merchant's to pay.

A month is stated once, after all its days are settled: rerunning returns the same statements."""

from __future__ import annotations

import calendar
import re
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from coalition import audit, economics, faults, outbox
from coalition.database import table
from coalition.errors import CoalitionError, InvalidRequest, NotFound
from coalition.ids import new_id
from merchants.models import Merchant
from settlement import business_days, disputes, engine, payments
from settlement import runs as settlement_runs
from settlement.models import PaymentInstruction, SettlementPosition, SettlementRun, Statement
from settlement.money import money, rounded, who_pays

statements = table(Statement)
runs = table(SettlementRun)
positions = table(SettlementPosition)
instructions = table(PaymentInstruction)
merchants = table(Merchant)

# A calendar month; year 0000 is none (Python's dates, like ISO 8601's, start at year 1).
MONTH = re.compile(r"^(?!0000)(\d{4})-(0[1-9]|1[0-2])$")
DESCRIPTIONS = {
    "issue_charges": "Points issued",
    "redemption_charges": "Your points redeemed (on redemption)",
    "reversal_debits": "Redemptions at your shop reversed",
    "debt_repayments": "Member debts repaid from your points",
    "reimbursements": "Points redeemed at your shop",
    "clawback_credits": "Points clawed back on refunds",
    "reversal_credits": "Redemptions of your points reversed",
    # Issue 15: rewards ordered from the catalogue, and prize draw entries.
    "reward_charges": "Your points spent on rewards (on redemption)",
    "draw_entries": "Your points spent on prize draw entries (on redemption)",
    "reward_order_cancellations": "Orders of your rewards cancelled",
    "reward_order_cancellations_at_cost": "Orders of your rewards cancelled, at their cost price",
    "reward_orders": "Rewards ordered from you",
    "reward_orders_at_cost": "Rewards ordered from you, at their cost price",
    "reward_charge_reversals": "Rewards bought with your points cancelled",
    "draw_entry_reversals": "Prize draw entries with your points refunded",
}
# Lines whose amount is not points x one rate (each order has its own cost price).
NO_RATE = ("reward_orders_at_cost", "reward_order_cancellations_at_cost")


class DaysNotSettled(CoalitionError):
    status, code, title = 409, "days_not_settled", "Days of the month are not settled"


def parse_month(text: str) -> tuple[date, date]:
    """`"2026-10"` -> its first and last day."""
    found = MONTH.match(text or "")
    if found is None:
        raise InvalidRequest("month must look like 2026-10", errors={"month": ["YYYY-MM"]})
    year, month = int(found[1]), int(found[2])
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def check_month(session: Session, text: str) -> tuple[date, date]:
    """A month the coalition can have: well formed, and not before the month of its first terms
    (422 naming `month`). Its first and last day."""
    first, last = parse_month(text)
    start = economics.first_day(session)
    if last < start:
        raise InvalidRequest(
            f"{text} is before the coalition's first terms, which take effect on"
            f" {start.isoformat()}: nothing happened then",
            errors={"month": [f"must be {start:%Y-%m} or later"]},
        )
    return first, last


def check_statable(session: Session, month: str, now: datetime) -> tuple[date, date]:
    """A month that can be stated now: one the coalition can have (`check_month`) that has
    ended. Its first and last day."""
    first, last = check_month(session, month)
    today = business_days.today(now)
    if last >= today:
        raise InvalidRequest(
            f"{month} has not ended; it can be stated from {last + timedelta(days=1)}",
            errors={"month": ["must have ended"]},
        )
    return first, last


def issue_month(
    session: Session, month: str, now: datetime, actor: audit.Actor | None = None
) -> list[Any]:
    """State `month` for every merchant that had a settled position in it or carries an unpaid
    balance into it. The month must have ended and each of its days be finally settled. Given
    an `actor`, stating it is in the audit log (stating it again changes nothing, and is not)."""
    first, last = check_statable(session, month, now)
    missing = settlement_runs.unsettled_days(session, first, last)
    if missing:
        raise DaysNotSettled(
            f"{len(missing)} days of {month} are not settled yet",
            days=[d.isoformat() for d in missing],
        )
    if session.execute(select(statements.c.id).where(statements.c.month == month).limit(1)).first():
        # Stated already (a month's statements are written in one transaction): the same ones.
        return month_statements(session, month)
    by_merchant = _month_positions(session, first, last)
    carried = _unpaid_before(session, month)
    notes = disputes.unstated_notes(session, month)
    terms = economics.coalition_terms(session, last)
    quantum = Decimal(1).scaleb(-economics.MINOR_UNIT_DIGITS[terms.currency])
    digits = economics.MINOR_UNIT_DIGITS[terms.currency]
    exact = lambda amount: engine.decimal_text(amount, digits)  # noqa: E731
    for merchant_id in sorted(set(by_merchant) | set(carried) | set(notes)):
        days, lines = by_merchant.get(merchant_id, ({}, {}))
        unpaid = carried.get(merchant_id, [])
        opening = sum((Decimal(row.closing) for row in unpaid), Decimal(0))
        rendered = [
            {
                "kind": kind,
                "description": _describe(kind, points, amount),
                "points": points,
                "amount": exact(amount if kind in engine.OWED else -amount),
            }
            for kind in (*engine.OWED, *engine.RECEIVABLE)
            if kind in lines
            for points, amount in [lines[kind]]
        ]
        # The credit and debit notes of disputes resolved since its last statement, a line
        # each (SPEC 3.10): the disputed statements themselves are never changed.
        stated_notes = notes.get(merchant_id, [])
        rendered += [disputes.note_line(note, digits) for note in stated_notes]
        summed = sum((Decimal(str(line["amount"])) for line in rendered), Decimal(0))
        net = summed.quantize(quantum, rounding=ROUND_HALF_EVEN)
        public_id = new_id("stm")
        session.execute(
            insert(statements).values(
                public_id=public_id,
                merchant_id=merchant_id,
                month=month,
                currency=terms.currency,
                status="issued",
                opening=exact(opening),
                exact_net=exact(summed),
                rounding=exact(net - summed),
                net=exact(net),
                closing=exact(opening + net),
                lines=rendered,
                days=_days_json(first, last, days, exact),
                issued_at=now,
            )
        )
        if unpaid:
            _carry(session, public_id, [row.id for row in unpaid])
        if stated_notes:
            disputes.mark_stated(
                session, statement_row(session, public_id).id, [n.id for n in stated_notes]
            )
        payments.instruct(session, statement_row(session, public_id))
        outbox.emit(
            session,
            "statement.issued",
            {
                "statement": {
                    "id": public_id,
                    "month": month,
                    "closing": rounded(opening + net, terms.currency),
                }
            },
            now,
            merchant_id=merchant_id,
        )
    _check_conservation(session, first, last, month)
    stated = month_statements(session, month)
    if actor is not None:
        audit.record(
            session,
            actor,
            "statements.issue",
            "month",
            month,
            before={"statements": 0},
            after={"statements": len(stated)},
            now=now,
        )
    faults.point("statements:stated")
    return stated


def _month_positions(
    session: Session, first: date, last: date
) -> dict[int, tuple[dict[date, list[Any]], dict[str, tuple[int, Decimal]]]]:
    """Per merchant: its days (issued, redeemed, net) and its month's components."""
    rows = session.execute(
        select(
            positions.c.merchant_id,
            runs.c.business_date,
            positions.c.issued,
            positions.c.redeemed,
            positions.c.net,
            positions.c.components,
        )
        .join(runs, runs.c.id == positions.c.run_id)
        .where(settlement_runs.settled_between(first, last))
    ).all()
    found: dict[int, tuple[dict[date, list[Any]], dict[str, Any]]] = {}
    for row in rows:
        days, lines = found.setdefault(row.merchant_id, ({}, defaultdict(lambda: (0, Decimal(0)))))
        days[row.business_date] = [row.issued, row.redeemed, Decimal(row.net)]
        for kind, part in row.components.items():
            points, amount = lines[kind]
            lines[kind] = (points + part["points"], amount + Decimal(part["amount"]))
    return found


def _unpaid_before(session: Session, month: str) -> dict[int, list[Any]]:
    """Per merchant, its statements of earlier months whose payout (a transfer to the merchant)
    failed and that no statement has carried yet, oldest first, locked until this transaction
    ends: whenever the failure came, the next statement made after it carries it, once.

    A failed collection is not carried: its Stripe invoice stays open and may still be paid, so
    carrying it could make the merchant pay twice."""
    rows = session.execute(
        select(statements.c.id, statements.c.merchant_id, statements.c.closing)
        .join(instructions, instructions.c.statement_id == statements.c.id)
        .where(
            statements.c.month < month,
            statements.c.carried_into_id.is_(None),
            instructions.c.status == "failed",
            instructions.c.kind == "transfer",
        )
        .order_by(statements.c.merchant_id, statements.c.month)
        .with_for_update(of=statements)
    ).all()
    found: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        found[row.merchant_id].append(row)
    return found


def _carry(session: Session, public_id: str, carried_ids: list[int]) -> None:
    """Mark the statements `carried_ids` as carried by the statement `public_id`, each once."""
    carrier = select(statements.c.id).where(statements.c.public_id == public_id).scalar_subquery()
    marked = session.execute(
        update(statements)
        .where(statements.c.id.in_(carried_ids), statements.c.carried_into_id.is_(None))
        .values(carried_into_id=carrier)
        .returning(statements.c.id)
    ).all()
    if len(marked) != len(carried_ids):  # the rows are locked: nobody else can carry them
        raise AssertionError(f"statements {carried_ids} were carried meanwhile")


def _describe(kind: str, points: int, amount: Decimal) -> str:
    text = f"{DESCRIPTIONS[kind]}: {points} points"
    if points and kind not in NO_RATE:
        rate = amount / points
        if rate == rate.quantize(Decimal("0.000001")):
            text += f" \u00d7 {engine.decimal_text(rate, 0)}"
    return text


def _days_json(
    first: date, last: date, days: dict[date, list[Any]], exact: Any
) -> list[dict[str, Any]]:
    out, day = [], first
    while day <= last:
        issued, redeemed, net = days.get(day, [0, 0, Decimal(0)])
        out.append(
            {"date": day.isoformat(), "issued": issued, "redeemed": redeemed, "net": exact(net)}
        )
        day += timedelta(days=1)
    return out


def _check_conservation(session: Session, first: date, last: date, month: str) -> None:
    """QUALITY B3: the month's statements' exact nets add up to the operator's result of its
    runs (each run already checked its own day) plus the dispute notes they state, whose
    counterpart is the operator, so rounding is all that separates the money."""
    run_totals = session.execute(
        select(runs.c.totals).where(
            runs.c.kind == "final",
            runs.c.business_date >= first,
            runs.c.business_date <= last,
        )
    ).scalars()
    operator = sum((Decimal(t["operator"]["result"]) for t in run_totals), Decimal(0))
    operator += disputes.stated_notes_total(session, month)
    stated = sum(
        (
            Decimal(x)
            for x in session.execute(
                select(statements.c.exact_net).where(statements.c.month == month)
            ).scalars()
        ),
        Decimal(0),
    )
    if stated != operator:
        raise AssertionError(
            f"{month}: statements' nets add up to {stated}, the operator's result is {operator}"
        )


def listing() -> Any:
    """Statements with their merchant's public id and name, for `render`."""
    return select(
        statements, merchants.c.public_id.label("merchant_public_id"), merchants.c.name
    ).join(merchants, merchants.c.id == statements.c.merchant_id)


def month_statements(session: Session, month: str) -> list[Any]:
    query = listing().where(statements.c.month == month).order_by(statements.c.merchant_id)
    return list(session.execute(query).all())


def statement_row(session: Session, public_id: str) -> Any:
    return session.execute(select(statements).where(statements.c.public_id == public_id)).one()


def statement_view(
    session: Session, public_id: str, merchant_id: int | None = None
) -> dict[str, Any]:
    """A statement as the API, the CSV and the PDF show it; `merchant_id` limits it to that
    merchant's own (another's is not found, as if it did not exist)."""
    query = listing().where(statements.c.public_id == public_id)
    if merchant_id is not None:
        query = query.where(statements.c.merchant_id == merchant_id)
    row = session.execute(query).one_or_none()
    if row is None:
        raise NotFound("no such statement")
    return render(session, row)


def render(session: Session, row: Any) -> dict[str, Any]:
    payment = session.execute(
        select(
            instructions.c.public_id,
            instructions.c.kind,
            instructions.c.status,
            instructions.c.amount_minor,
        ).where(instructions.c.statement_id == row.id)
    ).one_or_none()
    carried = session.execute(
        select(statements.c.public_id, statements.c.month, statements.c.closing)
        .where(statements.c.carried_into_id == row.id)
        .order_by(statements.c.month)
    ).all()
    currency = row.currency
    closing = rounded(row.closing, currency)
    return {
        "id": row.public_id,
        "merchant": {"id": row.merchant_public_id, "name": row.name},
        "month": row.month,
        "currency": currency,
        "status": row.status,
        "issued_at": row.issued_at.isoformat(),
        "summary": who_pays(row.name, closing),
        "opening": rounded(row.opening, currency),
        "carried": [
            {
                "statement": earlier.public_id,
                "month": earlier.month,
                "amount": rounded(earlier.closing, currency),
            }
            for earlier in carried
        ],
        "lines": row.lines,
        "exact_net": row.exact_net,
        "rounding": row.rounding,
        "net": rounded(row.net, currency),
        "closing": closing,
        "days": row.days,
        "payment": None
        if payment is None
        else {
            "id": payment.public_id,
            "kind": payment.kind,
            "status": payment.status,
            "amount": money(payment.amount_minor, currency),
        },
    }
