"""Read-only views of settlement for the API (SPEC 3.5, 3.7): the runs and a run's positions and
flows, and the payment instructions with their statement and merchant. No locks and no writes:
the API pages through these queries and serialises the rows."""

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
