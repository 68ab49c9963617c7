"""Statement disputes (SPEC 3.10, issue 16): a merchant disputes a line of its statement within
14 days of its issue (to the end of the 14th day after the issue's business day, decision 324);
staff answer with a credit or debit note, which is a line of the merchant's next statement, or a
rejection. The disputed statement never changes, the next statement's total moves by exactly the
note, and the month's conservation (its statements' nets = the operator's result of its runs +
the notes) holds.

The month is test_carry's October: Café Aurora takes 200 points a member earned at the bakery
(the coalition owes Aurora 2.00, the bakery owes 300 x 0.0125 = 3.75), stated on 1 November at
03:00 UTC (04:00 in Berlin): disputable until 15 November, 23:59:59 Berlin (22:59:59 UTC)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import clock
from coalition.audit import AuditEvent
from coalition.outbox import OutboxEvent
from settlement import disputes, renditions, statements
from settlement.models import PaymentInstruction, SettlementRun, Statement, StatementDispute
from tests import factories as f
from tests.settlement.test_carry import october, state
from tests.settlement.test_renditions import pdf_text

RAISED = datetime(2026, 11, 3, 9, tzinfo=UTC)
LAST_INSTANT = datetime(2026, 11, 15, 22, 59, 59, 999999, tzinfo=UTC)  # 23:59:59.999999 Berlin
TOO_LATE = datetime(2026, 11, 15, 23, tzinfo=UTC)  # 16 November, 00:00 Berlin
RESOLVED = datetime(2026, 11, 5, 14, tzinfo=UTC)
REASON = "Our till recorded 250 points that day, not 200"


@pytest.fixture
def at(monkeypatch: pytest.MonkeyPatch) -> Callable[[datetime], None]:
    """Move the clock the API reads to a moment."""

    def move(moment: datetime) -> None:
        monkeypatch.setattr(clock, "utcnow", lambda: moment)

    return move


@pytest.fixture
def stated(session: Session) -> tuple[int, int, Statement]:
    """October stated: Aurora, the bakery, and Aurora's statement."""
    aurora, bakery = october(session)
    return aurora, bakery, state(session, "2026-10")[aurora]


def dispute(
    client: FlaskClient,
    session: Session,
    merchant: int,
    statement_id: str,
    body: dict[str, Any] | None = None,
    key: str | None = None,
) -> Any:
    headers = f.merchant_headers(session, merchant)
    if key:
        headers["Idempotency-Key"] = key
    return client.post(
        f"/api/v1/statements/{statement_id}/disputes",
        json={"line": 1, "reason": REASON} if body is None else body,
        headers=headers,
    )


def resolve(client: FlaskClient, session: Session, dispute_id: str, body: dict[str, Any]) -> Any:
    return client.post(
        f"/api/v1/ops/disputes/{dispute_id}/resolve",
        json=body,
        headers=f.operator_headers(session),
    )


def events(session: Session, kind: str) -> list[OutboxEvent]:
    return list(session.scalars(select(OutboxEvent).where(OutboxEvent.type == kind)).all())


@pytest.mark.both_backends
def test_a_merchant_disputes_a_line_of_its_statement_within_the_window(
    client: FlaskClient, session: Session, stated: tuple[int, int, Statement], at: Any
) -> None:
    aurora, _, october_statement = stated
    at(RAISED)
    answer = dispute(client, session, aurora, october_statement.public_id)

    assert answer.status_code == 201, answer.json
    raised = answer.json
    assert raised["statement"] == {"id": october_statement.public_id, "month": "2026-10"}
    assert raised["line"] == {
        "number": 1,
        "kind": "reimbursements",
        "description": "Points redeemed at your shop: 200 points \u00d7 0.01",
        "amount": "-2.00",
    }
    assert (raised["reason"], raised["status"], raised["resolution"]) == (REASON, "open", None)
    assert raised["disputable_until"] == "2026-11-15"
    told = events(session, "statement.disputed")
    assert [(e.merchant_id, e.data["dispute"]["id"]) for e in told] == [(aurora, raised["id"])]

    listed = client.get(
        f"/api/v1/statements/{october_statement.public_id}/disputes",
        headers=f.merchant_headers(session, aurora),
    )
    assert [d["id"] for d in listed.json["data"]] == [raised["id"]]
    mine = client.get("/api/v1/disputes?status=open", headers=f.merchant_headers(session, aurora))
    assert [d["id"] for d in mine.json["data"]] == [raised["id"]]


def test_the_window_ends_with_the_14th_day_after_the_issue_in_the_coalitions_zone(
    client: FlaskClient, session: Session, stated: tuple[int, int, Statement], at: Any
) -> None:
    aurora, _, october_statement = stated
    at(TOO_LATE)
    late = dispute(client, session, aurora, october_statement.public_id)
    assert late.status_code == 422
    assert (late.json["code"], late.json["disputable_until"]) == (
        "dispute_window_closed",
        "2026-11-15",
    )
    at(LAST_INSTANT)
    assert dispute(client, session, aurora, october_statement.public_id).status_code == 201
    assert len(events(session, "statement.disputed")) == 1


def test_another_merchants_statement_is_not_found_and_nothing_is_written(
    client: FlaskClient, session: Session, stated: tuple[int, int, Statement], at: Any
) -> None:
    _, bakery, october_statement = stated
    at(RAISED)
    answer = dispute(client, session, bakery, october_statement.public_id)
    assert answer.status_code == 404
    listed = client.get(
        f"/api/v1/statements/{october_statement.public_id}/disputes",
        headers=f.merchant_headers(session, bakery),
    )
    assert listed.status_code == 404
    assert session.scalars(select(StatementDispute)).all() == []
    assert events(session, "statement.disputed") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"line": 2, "reason": REASON}, "line"),  # the statement has one line
        ({"line": 0, "reason": REASON}, "line"),
        ({"line": 1.5, "reason": REASON}, "line"),
        ({"line": "1", "reason": REASON}, "line"),
        ({"line": 1, "reason": "   "}, "reason"),
        ({"line": 1}, "reason"),
        ({"line": 1, "reason": REASON, "status": "resolved"}, "status"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(
    client: FlaskClient,
    session: Session,
    stated: tuple[int, int, Statement],
    at: Any,
    body: dict[str, Any],
    field: str,
) -> None:
    aurora, _, october_statement = stated
    at(RAISED)
    answer = dispute(client, session, aurora, october_statement.public_id, body)
    assert answer.status_code == 422, answer.json
    assert field in answer.json["errors"]
    assert session.scalars(select(StatementDispute)).all() == []


@pytest.mark.both_backends
def test_an_open_line_cannot_be_disputed_twice_but_a_retry_with_its_key_replays(
    client: FlaskClient, session: Session, stated: tuple[int, int, Statement], at: Any
) -> None:
    aurora, _, october_statement = stated
    at(RAISED)
    first = dispute(client, session, aurora, october_statement.public_id, key="dispute-1")
    retry = dispute(client, session, aurora, october_statement.public_id, key="dispute-1")
    again = dispute(client, session, aurora, october_statement.public_id, key="dispute-2")

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.json == first.json
    assert (again.status_code, again.json["code"]) == (409, "dispute_open")
    assert len(session.scalars(select(StatementDispute)).all()) == 1
    assert len(events(session, "statement.disputed")) == 1


def _raised(client: FlaskClient, session: Session, aurora: int, statement_id: str) -> str:
    answer = dispute(client, session, aurora, statement_id)
    assert answer.status_code == 201, answer.json
    return str(answer.json["id"])


@pytest.mark.both_backends
def test_a_credit_note_moves_the_next_statement_by_exactly_its_amount_and_the_disputed_one_not(
    client: FlaskClient, session: Session, stated: tuple[int, int, Statement], at: Any
) -> None:
    aurora, bakery, october_statement = stated
    before = statements.statement_view(session, october_statement.public_id)
    before_csv = renditions.statement_csv(before)
    at(RAISED)
    dispute_id = _raised(client, session, aurora, october_statement.public_id)
    at(RESOLVED)
    answer = resolve(
        client,
        session,
        dispute_id,
        {
            "outcome": "credit_note",
            "amount": {"amount": 50, "currency": "EUR"},
            "reason": "Confirmed from the till's journal",
        },
    )
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "resolved"
    assert answer.json["resolution"] == {
        "outcome": "credit_note",
        "note": {
            "kind": "credit_note",
            "amount": {"amount": 50, "currency": "EUR"},
            "stated_in": None,
        },
        "reason": "Confirmed from the till's journal",
        "resolved_at": RESOLVED.isoformat(),
    }
    # November: Aurora takes 100 more of the member's points (the coalition owes it 1.00).
    member = f.member(session)
    f.purchase(session, member, bakery, 100, now=datetime(2026, 11, 10, 9, tzinfo=UTC))
    f.redeem(session, member, aurora, 100, now=datetime(2026, 11, 11, 9, tzinfo=UTC))
    november = state(session, "2026-11")[aurora]

    assert november.lines == [
        {
            "kind": "reimbursements",
            "description": "Points redeemed at your shop: 100 points \u00d7 0.01",
            "points": 100,
            "amount": "-1.00",
        },
        {
            "kind": "credit_note",
            "description": f"Credit note on statement {october_statement.public_id} (2026-10),"
            f" line 1 (reimbursements): dispute {dispute_id}",
            "points": 0,
            "amount": "-0.50",
            "dispute": dispute_id,
        },
    ]
    # Without the note it would close at -1.00: it closes at exactly 0.50 more to Aurora.
    assert (november.exact_net, november.net, november.closing) == ("-1.50", "-1.50", "-1.50")
    paid = session.scalars(
        select(PaymentInstruction).where(PaymentInstruction.statement_id == november.id)
    ).one()
    assert (paid.kind, paid.amount_minor) == ("transfer", 150)
    # The month's conservation: November's nets = its runs' operator result + the note.
    run_result = sum(
        Decimal(t["operator"]["result"])
        for t in session.scalars(
            select(SettlementRun.totals).where(
                SettlementRun.kind == "final",
                SettlementRun.business_date.between(
                    datetime(2026, 11, 1).date(), datetime(2026, 11, 30).date()
                ),
            )
        )
    )
    nets = sum(
        Decimal(s.exact_net)
        for s in session.scalars(select(Statement).where(Statement.month == "2026-11"))
    )
    assert run_result == Decimal("0.25")  # the bakery's 100 points issued, less Aurora's 1.00
    assert nets == run_result + Decimal("-0.50") == Decimal("-0.25")
    # The disputed statement is as it was, to the byte.
    after = statements.statement_view(session, october_statement.public_id)
    assert after == before
    assert renditions.statement_csv(after) == before_csv
    # The CSV and the PDF of November show the note as the JSON does.
    shown_november = statements.statement_view(session, november.public_id)
    assert f'credit_note,"Credit note on statement {october_statement.public_id}' in (
        renditions.statement_csv(shown_november)
    )
    assert "Credit note" in pdf_text(renditions.statement_pdf(shown_november))
    # The note is stated once: in November, never again.
    shown = client.get(
        f"/api/v1/statements/{october_statement.public_id}/disputes",
        headers=f.merchant_headers(session, aurora),
    ).json["data"][0]
    assert shown["resolution"]["note"]["stated_in"] == november.public_id
    assert aurora not in state(session, "2026-12")


def test_a_debit_note_alone_makes_a_next_statement_that_the_merchant_pays(
    client: FlaskClient, session: Session, stated: tuple[int, int, Statement], at: Any
) -> None:
    aurora, _, october_statement = stated
    at(RAISED)
    dispute_id = _raised(client, session, aurora, october_statement.public_id)
    at(RESOLVED)
    answer = resolve(
        client,
        session,
        dispute_id,
        {"outcome": "debit_note", "amount": {"amount": 125, "currency": "EUR"}},
    )
    assert answer.status_code == 200, answer.json
    assert answer.json["resolution"]["outcome"] == "debit_note"

    november = state(session, "2026-11")[aurora]  # no trade in November: only the note

    assert [(line["kind"], line["amount"]) for line in november.lines] == [("debit_note", "1.25")]
    assert november.closing == "1.25"
    paid = session.scalars(
        select(PaymentInstruction).where(PaymentInstruction.statement_id == november.id)
    ).one()
    assert (paid.kind, paid.amount_minor) == ("invoice", 125)


def test_a_rejection_needs_a_reason_changes_no_statement_and_a_second_answer_is_a_conflict(
    client: FlaskClient, session: Session, stated: tuple[int, int, Statement], at: Any
) -> None:
    aurora, _, october_statement = stated
    at(RAISED)
    dispute_id = _raised(client, session, aurora, october_statement.public_id)
    at(RESOLVED)
    bare = resolve(client, session, dispute_id, {"outcome": "reject"})
    assert (bare.status_code, list(bare.json["errors"])) == (422, ["reason"])

    rejected = resolve(
        client, session, dispute_id, {"outcome": "reject", "reason": "The till's journal says 200"}
    )
    twice = resolve(
        client,
        session,
        dispute_id,
        {"outcome": "credit_note", "amount": {"amount": 1, "currency": "EUR"}},
    )

    assert rejected.status_code == 200
    assert rejected.json["status"] == "rejected"
    assert rejected.json["resolution"] == {
        "outcome": "rejected",
        "note": None,
        "reason": "The till's journal says 200",
        "resolved_at": RESOLVED.isoformat(),
    }
    assert (twice.status_code, twice.json["code"]) == (409, "dispute_closed")
    assert aurora not in state(session, "2026-11")
    told = events(session, "dispute.resolved")
    assert [(e.merchant_id, e.data["dispute"]["status"]) for e in told] == [(aurora, "rejected")]
    # Once answered, the line may be disputed again within the window (decision 326).
    at(RESOLVED + timedelta(hours=1))
    assert dispute(client, session, aurora, october_statement.public_id).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"outcome": "credit_note"}, "amount"),
        ({"outcome": "credit_note", "amount": {"amount": 0, "currency": "EUR"}}, "amount"),
        ({"outcome": "debit_note", "amount": {"amount": -5, "currency": "EUR"}}, "amount"),
        ({"outcome": "debit_note", "amount": {"amount": 5, "currency": "USD"}}, "amount"),
        (
            {"outcome": "reject", "reason": "no", "amount": {"amount": 5, "currency": "EUR"}},
            "amount",
        ),
        ({"outcome": "refund", "amount": {"amount": 5, "currency": "EUR"}}, "outcome"),
    ],
)
def test_a_bad_resolution_is_refused_and_leaves_the_dispute_open(
    client: FlaskClient,
    session: Session,
    stated: tuple[int, int, Statement],
    at: Any,
    body: dict[str, Any],
    field: str,
) -> None:
    aurora, _, october_statement = stated
    at(RAISED)
    dispute_id = _raised(client, session, aurora, october_statement.public_id)
    answer = resolve(client, session, dispute_id, body)
    assert answer.status_code == 422, answer.json
    assert field in answer.json["errors"]
    assert disputes.dispute_view(session, dispute_id)["status"] == "open"
    assert events(session, "dispute.resolved") == []


def test_every_resolution_is_audited_and_told_to_the_merchant(
    client: FlaskClient, session: Session, stated: tuple[int, int, Statement], at: Any
) -> None:
    aurora, _, october_statement = stated
    at(RAISED)
    dispute_id = _raised(client, session, aurora, october_statement.public_id)
    at(RESOLVED)
    resolve(
        client,
        session,
        dispute_id,
        {"outcome": "credit_note", "amount": {"amount": 50, "currency": "EUR"}, "reason": "ok"},
    )

    audited = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "dispute.resolve")
    ).one()
    assert (audited.target_type, audited.target_id, audited.actor_kind) == (
        "dispute",
        dispute_id,
        "operator_client",
    )
    assert audited.before == {"status": "open"}
    assert audited.after == {
        "status": "resolved",
        "statement": october_statement.public_id,
        "line": 1,
        "note": {
            "kind": "credit_note",
            "amount": {"amount": 50, "currency": "EUR"},
            "stated_in": None,
        },
        "reason": "ok",
    }
    told = events(session, "dispute.resolved")
    assert [e.merchant_id for e in told] == [aurora]
    assert told[0].data["dispute"]["resolution"]["note"]["amount"] == {
        "amount": 50,
        "currency": "EUR",
    }


def test_the_operator_lists_every_merchants_disputes_and_filters_the_open_ones(
    client: FlaskClient, session: Session, stated: tuple[int, int, Statement], at: Any
) -> None:
    aurora, bakery, october_statement = stated
    bakery_statement = session.scalars(
        select(Statement).where(Statement.merchant_id == bakery, Statement.month == "2026-10")
    ).one()
    at(RAISED)
    first = _raised(client, session, aurora, october_statement.public_id)
    second = _raised(client, session, bakery, bakery_statement.public_id)
    resolve(client, session, first, {"outcome": "reject", "reason": "no"})
    ops = f.operator_headers(session)

    every = client.get("/api/v1/ops/disputes", headers=ops).json["data"]
    waiting = client.get("/api/v1/ops/disputes?status=open", headers=ops).json["data"]

    assert [(d["id"], d["merchant"]["name"]) for d in every] == [
        (second, "Bakery"),
        (first, "Café Aurora"),
    ]
    assert [d["id"] for d in waiting] == [second]
    # A merchant sees its own only.
    mine = client.get("/api/v1/disputes", headers=f.merchant_headers(session, bakery)).json
    assert [d["id"] for d in mine["data"]] == [second]
