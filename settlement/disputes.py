"""Statement disputes (SPEC 3.10): a merchant disputes one line of one of its statements within
14 days of its issue, with a reason; staff resolve the dispute with a credit note (the operator
owes the merchant), a debit note (the merchant owes the operator), or reject it with a reason.

The disputed statement is never changed. A note is stated once, as its own line (`credit_note`
or `debit_note`) of the merchant's next statement (`statements.issue_month` asks `unstated_notes`
and marks them with `mark_stated`), and its payment follows that statement's closing. The note's
counterpart is the operator's, so a month's statements add up to its runs' operator result plus
the notes they state (`stated_notes_total`).

Raising emits `statement.disputed` and resolving `dispute.resolved` to the merchant (the
outbox); resolving is in the audit log. Services speak the domain: refusals are
`coalition.errors` errors."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coalition import audit, economics, outbox
from coalition.database import table
from coalition.errors import CoalitionError, InvalidRequest, NotFound
from coalition.ids import new_id
from merchants.models import Merchant
from settlement import business_days, engine
from settlement.models import DISPUTE_STATUSES, NOTE_KINDS, Statement, StatementDispute
from settlement.money import money

disputes = table(StatementDispute)
statements = table(Statement)
merchants = table(Merchant)

# SPEC 3.10: a merchant may dispute a statement line within 14 days (decision 324).
WINDOW_DAYS = 14
MAX_REASON = 2000
OUTCOMES = (*NOTE_KINDS, "reject")
NOTE_NAMES = {"credit_note": "Credit note", "debit_note": "Debit note"}

__all__ = ["DISPUTE_STATUSES", "NOTE_KINDS"]  # the HTTP modules' choices, without models


class DisputeWindowClosed(CoalitionError):
    status, code, title = 422, "dispute_window_closed", "The statement can no longer be disputed"


class DisputeAlreadyOpen(CoalitionError):
    status, code, title = 409, "dispute_open", "The line is already disputed"


class DisputeClosed(CoalitionError):
    status, code, title = 409, "dispute_closed", "The dispute is already settled"


def disputable_until(issued_at: datetime) -> date:
    """The last business day on which a statement issued at `issued_at` may be disputed: the
    14th calendar day after the business day of its issue, to that day's end in the coalition's
    time zone (decision 324). Issued on 1 December 03:00: disputable to 15 December, 23:59:59."""
    return business_days.today(issued_at) + timedelta(days=WINDOW_DAYS)


def is_disputable(issued_at: datetime, now: datetime) -> bool:
    return business_days.today(now) <= disputable_until(issued_at)


# Raising ------------------------------------------------------------------------------------------


def raise_dispute(
    session: Session, merchant_id: int, statement_id: str, line: int, reason: str, now: datetime
) -> dict[str, Any]:
    """Dispute line `line` (its 1-based number on the statement, decision 325) of the
    merchant's statement `statement_id`. Another merchant's statement is not found; a line that
    does not exist, or a blank reason, is 422 naming the field; after the window, 422
    `dispute_window_closed`; a line with an open dispute, 409 `dispute_open`."""
    found = session.execute(
        select(statements).where(
            statements.c.public_id == statement_id, statements.c.merchant_id == merchant_id
        )
    ).one_or_none()
    if found is None:
        raise NotFound("no such statement")
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise InvalidRequest(
            "a dispute needs a reason", errors={"reason": [f"1 to {MAX_REASON} characters"]}
        )
    lines = found.lines or []
    if not 1 <= line <= len(lines):
        raise InvalidRequest(
            f"the statement has no line {line}: its lines are numbered 1 to {len(lines)}",
            errors={"line": [f"must be a line of the statement, 1 to {len(lines)}"]},
        )
    if not is_disputable(found.issued_at, now):
        last = disputable_until(found.issued_at)
        raise DisputeWindowClosed(
            f"statement {statement_id} could be disputed until {last.isoformat()}"
            f" ({WINDOW_DAYS} days after its issue)",
            disputable_until=last.isoformat(),
        )
    _refuse_if_open(session, found.id, line)
    public_id = new_id("dsp")
    try:
        with session.begin_nested():
            session.execute(
                insert(disputes).values(
                    public_id=public_id,
                    statement_id=found.id,
                    merchant_id=merchant_id,
                    line=line,
                    line_kind=str(lines[line - 1]["kind"]),
                    reason=reason,
                    status="open",
                    raised_at=now,
                    currency=found.currency,
                )
            )
    except IntegrityError:  # a concurrent dispute of the same line won the unique index
        raise DisputeAlreadyOpen(f"line {line} of {statement_id} is already disputed") from None
    view = dispute_view(session, public_id)
    outbox.emit(session, "statement.disputed", {"dispute": view}, now, merchant_id=merchant_id)
    return view


def _refuse_if_open(session: Session, statement_pk: int, line: int) -> None:
    """One open dispute per line (decision 326); an answered line may be disputed again."""
    open_one = session.execute(
        select(disputes.c.public_id).where(
            disputes.c.statement_id == statement_pk,
            disputes.c.line == line,
            disputes.c.status == "open",
        )
    ).scalar_one_or_none()
    if open_one is not None:
        raise DisputeAlreadyOpen(
            f"line {line} is already disputed ({open_one}); staff will answer it",
            dispute=open_one,
        )


# Resolving ----------------------------------------------------------------------------------------


def resolve(
    session: Session,
    dispute_id: str,
    outcome: str,
    amount_minor: int | None,
    currency: str | None,
    reason: str | None,
    actor: audit.Actor,
    now: datetime,
) -> dict[str, Any]:
    """Settle an open dispute: `credit_note` or `debit_note` of `amount_minor` (> 0, minor units
    of the statement's currency), stated in the merchant's next statement; or `reject`, which
    needs a reason. Audited, and told to the merchant (`dispute.resolved`). A dispute already
    settled is 409 `dispute_closed`."""
    row = session.execute(
        select(disputes).where(disputes.c.public_id == dispute_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFound("no such dispute")
    reason = (reason or "").strip() or None
    _check_resolution(row, outcome, amount_minor, currency, reason)
    if row.status != "open":
        raise DisputeClosed(f"dispute {dispute_id} was {row.status} already", status=row.status)
    note = outcome in NOTE_KINDS
    session.execute(
        update(disputes)
        .where(disputes.c.id == row.id)
        .values(
            status="resolved" if note else "rejected",
            note_kind=outcome if note else None,
            note_minor=amount_minor if note else None,
            resolution=reason,
            resolved_at=now,
            resolved_by=actor.label,
        )
    )
    view = dispute_view(session, dispute_id)
    audit.record(
        session,
        actor,
        "dispute.resolve",
        "dispute",
        dispute_id,
        before={"status": "open"},
        after={
            "status": view["status"],
            "statement": view["statement"]["id"],
            "line": row.line,
            "note": view["resolution"]["note"],
            "reason": reason,
        },
        now=now,
    )
    outbox.emit(session, "dispute.resolved", {"dispute": view}, now, merchant_id=row.merchant_id)
    return view


def _check_resolution(
    row: Any, outcome: str, amount_minor: int | None, currency: str | None, reason: str | None
) -> None:
    if outcome not in OUTCOMES:
        raise InvalidRequest(
            f"outcome must be one of {', '.join(OUTCOMES)}",
            errors={"outcome": [f"one of {', '.join(OUTCOMES)}"]},
        )
    if reason is not None and len(reason) > MAX_REASON:
        raise InvalidRequest(
            "the reason is too long", errors={"reason": [f"at most {MAX_REASON} characters"]}
        )
    if outcome == "reject":
        if reason is None:
            raise InvalidRequest(
                "a rejection needs a reason", errors={"reason": ["required to reject"]}
            )
        if amount_minor is not None:
            raise InvalidRequest(
                "a rejection has no amount", errors={"amount": ["only for a credit or debit note"]}
            )
        return
    if amount_minor is None or amount_minor <= 0:
        raise InvalidRequest(
            "a note needs an amount greater than 0",
            errors={"amount": ["an amount in minor units, greater than 0"]},
        )
    if currency != row.currency:
        raise InvalidRequest(
            f"the note must be in the statement's currency, {row.currency}",
            errors={"amount": [f"currency must be {row.currency}"]},
        )


# Notes in the next statement ----------------------------------------------------------------------


def note_amount(kind: str, amount_minor: int, currency: str) -> Decimal:
    """The note's amount in major units, signed as statements sign theirs: positive, the
    merchant pays (a debit note); negative, the operator does (a credit note)."""
    value = Decimal(amount_minor).scaleb(-economics.MINOR_UNIT_DIGITS[currency])
    return value if kind == "debit_note" else -value


def unstated_notes(session: Session, month: str) -> dict[int, list[Any]]:
    """Per merchant, the notes resolved and not stated yet, of statements of months before
    `month`, oldest first, locked until this transaction ends: the merchant's next statement
    states each, once (decision 327)."""
    rows = session.execute(
        select(
            disputes.c.id,
            disputes.c.public_id,
            disputes.c.merchant_id,
            disputes.c.line,
            disputes.c.line_kind,
            disputes.c.note_kind,
            disputes.c.note_minor,
            disputes.c.currency,
            statements.c.public_id.label("statement"),
            statements.c.month,
        )
        .join(statements, statements.c.id == disputes.c.statement_id)
        .where(
            disputes.c.status == "resolved",
            disputes.c.applied_statement_id.is_(None),
            statements.c.month < month,
        )
        .order_by(disputes.c.merchant_id, disputes.c.id)
        .with_for_update(of=disputes)
    ).all()
    found: dict[int, list[Any]] = {}
    for row in rows:
        found.setdefault(row.merchant_id, []).append(row)
    return found


def note_line(note: Any, digits: int) -> dict[str, Any]:
    """A note as a statement line of its own kind, naming the disputed statement and line."""
    amount = note_amount(note.note_kind, note.note_minor, note.currency)
    return {
        "kind": note.note_kind,
        "description": (
            f"{NOTE_NAMES[note.note_kind]} on statement {note.statement} ({note.month}),"
            f" line {note.line} ({note.line_kind}): dispute {note.public_id}"
        ),
        "points": 0,
        "amount": engine.decimal_text(amount, digits),
        "dispute": note.public_id,
    }


def mark_stated(session: Session, statement_pk: int, note_ids: list[int]) -> None:
    """The notes `note_ids` are stated in the statement `statement_pk`, each once."""
    marked = session.execute(
        update(disputes)
        .where(disputes.c.id.in_(note_ids), disputes.c.applied_statement_id.is_(None))
        .values(applied_statement_id=statement_pk)
        .returning(disputes.c.id)
    ).all()
    if len(marked) != len(note_ids):  # the rows are locked: nobody else can state them
        raise AssertionError(f"notes {note_ids} were stated meanwhile")


def stated_notes_total(session: Session, month: str) -> Decimal:
    """What the notes stated in `month`'s statements add to the merchants' nets (and so to the
    operator's result: the note's counterpart is the operator, decision 328)."""
    rows = session.execute(
        select(disputes.c.note_kind, disputes.c.note_minor, disputes.c.currency)
        .join(statements, statements.c.id == disputes.c.applied_statement_id)
        .where(statements.c.month == month)
    ).all()
    return sum(
        (note_amount(row.note_kind, row.note_minor, row.currency) for row in rows), Decimal(0)
    )


# Reads --------------------------------------------------------------------------------------------


def _listing() -> Select[Any]:
    stated = statements.alias("stated")
    return (
        select(
            disputes,
            statements.c.public_id.label("statement"),
            statements.c.month,
            statements.c.lines,
            statements.c.issued_at.label("statement_issued_at"),
            merchants.c.public_id.label("merchant"),
            merchants.c.name.label("merchant_name"),
            stated.c.public_id.label("stated_in"),
        )
        .join(statements, statements.c.id == disputes.c.statement_id)
        .join(merchants, merchants.c.id == disputes.c.merchant_id)
        .outerjoin(stated, stated.c.id == disputes.c.applied_statement_id)
    )


DISPUTE_ID = disputes.c.id


def merchant_disputes(merchant_id: int, statement_id: str | None = None) -> Select[Any]:
    """The merchant's disputes (of one statement, given its id), for `paginate` and `render`."""
    query = _listing().where(disputes.c.merchant_id == merchant_id)
    if statement_id is not None:
        query = query.where(statements.c.public_id == statement_id)
    return query


def check_statement(session: Session, statement_id: str, merchant_id: int) -> None:
    """The merchant's own statement, or not found."""
    if (
        session.execute(
            select(statements.c.id).where(
                statements.c.public_id == statement_id, statements.c.merchant_id == merchant_id
            )
        ).first()
        is None
    ):
        raise NotFound("no such statement")


def all_disputes(status: str | None = None) -> Select[Any]:
    """Every merchant's disputes (`status` filters), for `paginate` and `render`."""
    query = _listing()
    if status:
        query = query.where(disputes.c.status == status)
    return query


def open_first(session: Session, page: int, page_size: int) -> tuple[list[dict[str, Any]], bool]:
    """The console's list: open disputes first (oldest first, the longest waiting on top), then
    the settled ones, newest first. One numbered page and whether another follows."""
    page = max(page, 1)
    rows = session.execute(
        _listing()
        .order_by(
            case((disputes.c.status == "open", 0), else_=1),
            case((disputes.c.status == "open", disputes.c.id), else_=-disputes.c.id),
        )
        .limit(page_size + 1)
        .offset((page - 1) * page_size)
    ).all()
    return [render(row) for row in rows[:page_size]], len(rows) > page_size


def dispute_view(
    session: Session, dispute_id: str, merchant_id: int | None = None
) -> dict[str, Any]:
    query = _listing().where(disputes.c.public_id == dispute_id)
    if merchant_id is not None:
        query = query.where(disputes.c.merchant_id == merchant_id)
    row = session.execute(query).one_or_none()
    if row is None:
        raise NotFound("no such dispute")
    return render(row)


def render(row: Any) -> dict[str, Any]:
    """A dispute as the API, the portal and the console show it."""
    lines = row.lines or []
    shown = lines[row.line - 1] if 1 <= row.line <= len(lines) else {"kind": row.line_kind}
    settled = row.status != "open"
    return {
        "id": row.public_id,
        "statement": {"id": row.statement, "month": row.month},
        "merchant": {"id": row.merchant, "name": row.merchant_name},
        "line": {
            "number": row.line,
            "kind": shown.get("kind"),
            "description": shown.get("description"),
            "amount": shown.get("amount"),
        },
        "currency": row.currency,
        "reason": row.reason,
        "status": row.status,
        "raised_at": row.raised_at.isoformat(),
        "disputable_until": disputable_until(row.statement_issued_at).isoformat(),
        "resolution": None
        if not settled
        else {
            "outcome": row.note_kind or "rejected",
            "note": None
            if row.note_kind is None
            else {
                "kind": row.note_kind,
                "amount": money(row.note_minor, row.currency),
                "stated_in": row.stated_in,
            },
            "reason": row.resolution,
            "resolved_at": row.resolved_at.isoformat(),
        },
    }


def statement_disputes(
    session: Session, statement_id: str, merchant_id: int
) -> list[dict[str, Any]]:
    """A statement's disputes, oldest first, for its page in the portal."""
    rows = session.execute(
        merchant_disputes(merchant_id, statement_id).order_by(disputes.c.id)
    ).all()
    return [render(row) for row in rows]


def open_count(session: Session) -> int:
    """How many disputes wait for an answer."""
    return int(
        session.execute(
            select(func.count()).select_from(disputes).where(disputes.c.status == "open")
        ).scalar_one()
    )
