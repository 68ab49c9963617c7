"""Read-only views of settlement for the API and the console (SPEC 3.5, 3.7, 3.9): the runs and a
run's positions and flows, and the payment instructions with their statement and merchant. No
locks and no writes: the API pages through these queries by cursor and serialises the rows; the
console's pages take them a numbered page at a time (`page_of`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from coalition.database import table
from merchants.models import Merchant
from settlement import runs as settlement_runs
from settlement.models import (
    INSTRUCTION_STATUSES,
    RUN_KINDS,
    PaymentInstruction,
    SettlementFlow,
    SettlementPosition,
    SettlementRun,
    Statement,
)
from settlement.money import OPERATOR
from settlement.statements import check_month

runs = table(SettlementRun)
positions = table(SettlementPosition)
flows = table(SettlementFlow)
instructions = table(PaymentInstruction)
statements = table(Statement)
merchants = table(Merchant)

__all__ = ["INSTRUCTION_STATUSES", "RUN_KINDS"]  # the console's filters offer these


@dataclass(frozen=True)
class Page:
    """One numbered page of a list (1-based) and whether there are pages either side."""

    rows: list[Any]
    number: int
    has_previous: bool
    has_next: bool


def page_of(session: Session, query: Select[Any], page: int, page_size: int) -> Page:
    """Rows `page_size` at a time: LIMIT one more than a page, to know whether one follows."""
    page = max(page, 1)
    rows = session.execute(query.limit(page_size + 1).offset((page - 1) * page_size)).all()
    return Page(list(rows[:page_size]), page, page > 1, len(rows) > page_size)


@dataclass(frozen=True)
class RunDetail:
    """A run's positions (by merchant id) and flows, and each party as `{"id", "name"}`: a
    merchant by its id, the operator by None."""

    positions: list[Any]
    flows: list[Any]
    parties: dict[int | None, dict[str, str]]


def runs_query(session: Session, business_date: date | None, kind: str | None) -> Select[Any]:
    """The runs, filtered by day and kind; a day settlement cannot have is refused."""
    query = select(runs)
    if business_date:
        settlement_runs.check_day(session, business_date)
        query = query.where(runs.c.business_date == business_date)
    if kind:
        query = query.where(runs.c.kind == kind)
    return query


def run_detail(session: Session, run: Any) -> RunDetail:
    """The positions and flows of `run`, with the parties they name."""
    position_rows = session.execute(
        select(positions).where(positions.c.run_id == run.id).order_by(positions.c.merchant_id)
    ).all()
    flow_rows = session.execute(
        select(flows).where(flows.c.run_id == run.id).order_by(flows.c.id)
    ).all()
    parties = _parties(
        session,
        {p.merchant_id for p in position_rows}
        | {f.issuer_merchant_id for f in flow_rows}
        | {f.redeemer_merchant_id for f in flow_rows},
    )
    return RunDetail(positions=list(position_rows), flows=list(flow_rows), parties=parties)


def _parties(session: Session, ids: set[int | None]) -> dict[int | None, dict[str, str]]:
    """Each merchant id as `{"id", "name"}`; None, the operator."""
    found: dict[int | None, dict[str, str]] = {None: dict(OPERATOR)}
    known = [i for i in ids if i is not None]
    if known:
        rows = session.execute(
            select(merchants.c.id, merchants.c.public_id, merchants.c.name).where(
                merchants.c.id.in_(known)
            )
        )
        found.update({row.id: {"id": row.public_id, "name": row.name} for row in rows})
    return found


def payments_query(session: Session, status: str | None, month: str | None) -> Select[Any]:
    """The payment instructions with their statement's id and month and their merchant,
    filtered by status and month; a month settlement cannot have is refused."""
    query = (
        select(
            instructions,
            statements.c.public_id.label("statement"),
            statements.c.month,
            merchants.c.public_id.label("merchant"),
            merchants.c.name.label("merchant_name"),
        )
        .join(statements, statements.c.id == instructions.c.statement_id)
        .join(merchants, merchants.c.id == instructions.c.merchant_id)
    )
    if status:
        query = query.where(instructions.c.status == status)
    if month:
        check_month(session, month)
        query = query.where(statements.c.month == month)
    return query


def newest_runs(session: Session, kind: str | None, page: int, page_size: int) -> Page:
    """The runs, newest first, a numbered page at a time; `kind` filters."""
    query = runs_query(session, None, kind).order_by(runs.c.id.desc())
    return page_of(session, query, page, page_size)


def run_positions(session: Session, run: Any, page: int, page_size: int) -> Page:
    """A run's positions with their merchant's public id and name, by merchant name."""
    query = (
        select(
            positions,
            merchants.c.public_id.label("merchant"),
            merchants.c.name.label("merchant_name"),
        )
        .join(merchants, merchants.c.id == positions.c.merchant_id)
        .where(positions.c.run_id == run.id)
        .order_by(merchants.c.name, merchants.c.id)
    )
    return page_of(session, query, page, page_size)


def newest_payments(
    session: Session, status: str | None, month: str | None, page: int, page_size: int
) -> Page:
    """Payment instructions, newest first, a numbered page at a time."""
    query = payments_query(session, status, month).order_by(instructions.c.id.desc())
    return page_of(session, query, page, page_size)
