"""The purchase batch (SPEC 3.3): a JSON array or NDJSON of up to 1,000 purchases, each line
answered as `POST /purchases` would answer it, a bad line never stopping the rest; written
set-based, and leaving the ledger exactly as the same purchases posted one by one would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from sqlalchemy import event, func, select

from coalition import economics, tenancy
from coalition.errors import CoalitionError
from coalition.extensions import db
from coalition.ledger import operations
from coalition.ledger.models import Account, Lot, LotConsumption, Transaction, Transfer
from coalition.ledger.verify import verify
from coalition.members.models import Member
from coalition.outbox import OutboxEvent
from merchants import purchases as service
from merchants import schemas
from merchants.api import batch
from tests import factories as f
from tests.factories import T0

BATCH = "/api/v1/purchases/batch"
NDJSON = {"Content-Type": "application/x-ndjson"}


def card_of(session, member_id: int) -> str:
    return session.execute(select(Member.card_number).where(Member.id == member_id)).scalar_one()


def purchase(member: str, amount: int = 1000, external_id: str = "r-1", **extra: Any):
    return {
        "member": member,
        "amount": amount,
        "currency": "EUR",
        "external_id": external_id,
    } | extra


def ndjson(*lines: Any) -> bytes:
    return b"\n".join(
        line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines
    )


def count(session, model: Any) -> int:
    with tenancy.acting_as(tenancy.SYSTEM, session):
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def balance_of(session, member_id: int) -> int:
    return session.execute(
        select(Account.balance).where(Account.member_id == member_id)
    ).scalar_one()


@pytest.fixture
def shop(session) -> int:
    return f.merchant(session, "Grocer")


@pytest.fixture
def till(session, shop) -> dict[str, str]:
    return f.merchant_headers(session, shop)


def test_each_line_gets_its_own_answer_in_order_and_a_bad_line_stops_nothing(session, client, till):
    alice, bob = f.member(session), f.member(session)
    alice_card, bob_card = card_of(session, alice), card_of(session, bob)

    response = client.post(
        BATCH,
        json=[
            purchase(alice_card, 1000, "r-1"),
            purchase(bob_card, 2000, "r-2"),
            purchase("6375000000000000", 500, "r-3"),
            purchase(alice_card, 500, "r-4", currency="USD"),
            purchase(alice_card, -1, "r-5"),
            purchase(alice_card, 300, "r-6", balance=10**6),
            "not an object",
            purchase(alice_card, 1000, "r-1"),
            purchase(alice_card, 3000, "r-7"),
        ],
        headers=till,
    )

    assert response.status_code == 200
    body = response.get_json()
    schemas.BatchResultSchema().load(body)
    results = body["results"]
    assert [(r["line"], r["status"]) for r in results] == [
        (1, 201),
        (2, 201),
        (3, 404),
        (4, 422),
        (5, 422),
        (6, 422),
        (7, 422),
        (8, 200),
        (9, 201),
    ]
    assert [r["body"].get("code") for r in results if r["status"] >= 400] == [
        "not_found",
        "unsupported_currency",
        "validation_error",
        "validation_error",
        "validation_error",
    ]
    assert results[5]["body"]["errors"] == {"balance": ["Unknown field."]}
    assert results[7]["body"] == results[0]["body"]
    for result in results:
        if result["status"] < 300:
            schemas.PurchaseResultSchema().load(result["body"])
    # Welcome once each; alice's running balance shows on each of her lines.
    assert results[0]["body"]["member"]["balance"] == 110
    assert results[8]["body"]["member"]["balance"] == 140
    assert (balance_of(session, alice), balance_of(session, bob)) == (140, 120)


def test_an_ndjson_batch_numbers_its_lines_and_skips_blank_ones(session, client, till):
    card = card_of(session, f.member(session))

    response = client.post(
        BATCH,
        data=ndjson(purchase(card, 1000, "a"), b"", b'{"member": oops', purchase(card, 500, "b"))
        + b"\n",
        headers={**till, **NDJSON},
    )

    results = response.get_json()["results"]
    assert [(r["line"], r["status"]) for r in results] == [(1, 201), (3, 400), (4, 201)]
    assert results[1]["body"]["code"] == "malformed_json"


def test_purchases_recorded_before_are_replayed_and_conflicts_named(session, client, till):
    alice, bob = f.member(session), f.member(session)
    card = card_of(session, alice)
    first = client.post("/api/v1/purchases", json=purchase(card, 1000, "r-1"), headers=till)

    response = client.post(
        BATCH,
        json=[
            purchase(card, 1000, "r-1"),
            purchase(card_of(session, bob), 1000, "r-1"),
            purchase(card, 700, "r-2"),
            purchase(card, 701, "r-2"),
        ],
        headers=till,
    )

    results = response.get_json()["results"]
    assert [r["status"] for r in results] == [200, 409, 201, 409]
    assert results[0]["body"] == first.get_json()
    assert results[1]["body"]["code"] == results[3]["body"]["code"] == "idempotency_conflict"
    assert balance_of(session, bob) == 0
    assert balance_of(session, alice) == 110 + 7


def test_a_batch_of_more_than_a_thousand_is_refused_whole(session, client, till):
    card = card_of(session, f.member(session))
    lines = [purchase(card, 100, f"r-{n}") for n in range(1001)]

    as_array = client.post(BATCH, json=lines, headers=till)
    as_ndjson = client.post(BATCH, data=ndjson(*lines), headers={**till, **NDJSON})

    for response in (as_array, as_ndjson):
        assert response.status_code == 413
        assert response.get_json(force=True)["code"] == "batch_too_large"
    assert count(session, Transaction) == 0


def test_a_thousand_purchases_fit_in_one_batch(session, client, till):
    members = [f.member(session) for _ in range(10)]
    cards = [card_of(session, m) for m in members]
    # Each member spends about 250.00 in its hundred purchases: below the first tier's 500.00,
    # so every line earns at the base rate.
    amounts = [100 + n % 300 for n in range(1000)]

    response = client.post(
        BATCH,
        json=[purchase(cards[n % 10], amounts[n], f"r-{n}") for n in range(1000)],
        headers=till,
    )

    results = response.get_json()["results"]
    assert len(results) == 1000
    assert {r["status"] for r in results} == {201}
    assert count(session, Transaction) == 1000
    assert (
        sum(balance_of(session, m) for m in members)
        == sum(amount // 100 for amount in amounts) + 10 * 100
    )


@pytest.mark.parametrize(
    ("data", "headers", "status", "code"),
    [
        (b"[]", {}, 422, "validation_error"),
        (b'{"member": "x"}', {}, 422, "validation_error"),
        (b"[{", {}, 400, "malformed_json"),
        (b"\n\n", NDJSON, 422, "validation_error"),
        (b"x", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ],
)
def test_a_body_that_is_no_batch_is_a_problem(session, client, till, data, headers, status, code):
    response = client.post(
        BATCH, data=data, headers={**till, "Content-Type": "application/json", **headers}
    )

    assert response.status_code == status
    assert response.content_type == "application/problem+json"
    assert response.get_json(force=True)["code"] == code


def test_a_field_name_no_database_can_store_is_refused_safely(session, client, till):
    card = card_of(session, f.member(session))

    response = client.post(
        BATCH,
        json=[purchase(card, 100, "r") | {"\x00\ud800": 1}],
        headers={**till, "Idempotency-Key": "k"},
    )

    [result] = response.get_json()["results"]
    assert result["status"] == 422
    assert list(result["body"]["errors"]) == ["\\u0000\\ud800"]


def test_a_batch_retried_under_its_key_is_replayed(session, client, till):
    card = card_of(session, f.member(session))
    lines = [purchase(card, 1000, "r-1"), purchase(card, 500, "r-2")]
    keyed = {**till, "Idempotency-Key": "batch-7"}

    first = client.post(BATCH, json=lines, headers=keyed)
    again = client.post(BATCH, json=lines, headers=keyed)

    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count(session, Transaction) == 2


def test_batches_need_the_purchases_scope(session, client, shop):
    reader = f.merchant_headers(session, shop, "transactions:read")

    response = client.post(BATCH, json=[], headers=reader)

    assert response.get_json(force=True)["code"] == "insufficient_scope"


def test_a_batch_that_loses_a_race_for_an_external_id_retries_and_answers_each_line(
    session, client, till, monkeypatch
):
    """When another request's purchase appears between the batch's check and its insert, the
    unique index refuses the insert; the batch rolls back to its savepoint and tries again,
    and then sees (and answers) that purchase."""
    alice, bob = f.member(session), f.member(session)
    client.post(
        "/api/v1/purchases", json=purchase(card_of(session, alice), 1000, "r-1"), headers=till
    )
    looked, real = [], service.earlier_transactions

    def blind_once(*args: Any, **kwargs: Any) -> Any:
        looked.append(1)
        return {} if len(looked) == 1 else real(*args, **kwargs)

    monkeypatch.setattr(service, "earlier_transactions", blind_once)

    response = client.post(
        BATCH,
        json=[
            purchase(card_of(session, bob), 1000, "r-1"),
            purchase(card_of(session, bob), 500, "r-2"),
        ],
        headers=till,
    )

    assert [r["status"] for r in response.get_json()["results"]] == [409, 201]
    assert len(looked) == 2
    assert balance_of(session, bob) == 105


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL statements sent while the block runs."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _executemany) -> None:
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_a_batch_costs_the_same_statements_for_two_lines_or_two_hundred(session, shop):
    """Set-based: one query resolves the members, one locks them, one finds earlier purchases,
    one INSERT per table, one UPDATE of the balances, whatever the number of lines."""
    members = [f.member(session) for _ in range(200)]
    cards = [card_of(session, m) for m in members]

    def run(lines: list[dict[str, Any]]) -> int:
        parsed = batch.parse_lines(json.dumps(lines).encode(), ndjson=False)
        with statements() as sent:
            results = service.record_batch(
                session, merchant_id=shop, lines=parsed.lines, actor=f.TILL, now=T0
            )
        assert all(isinstance(r, service.PurchaseResult) and not r.replayed for r in results)
        return len(sent)

    # The day's terms are read once per process and day, then cached: not a cost per batch.
    economics.terms_at(T0, shop, session)
    small = run([purchase(cards[n], 1000, f"s-{n}") for n in range(2)])
    large = run([purchase(cards[n], 1000, f"l-{n}") for n in range(200)])

    assert large == small
    assert large <= 14


# Equivalence: a batch leaves the ledger as the same purchases posted one by one.

MEMBERS = 4


def _world(session, *, in_debt: set[int], welcomed: set[int]) -> tuple[int, list[int]]:
    """A merchant and MEMBERS members, some already welcomed, some in debt (a purchase spent,
    then refunded in full: its points clawed back from lots that are no longer there)."""
    shop = f.merchant(session)
    members = [f.member(session) for _ in range(MEMBERS)]
    for n, member in enumerate(members):
        if n in welcomed:
            f.purchase(session, member, shop, 0, welcome=100)
        if n in in_debt:
            bought = f.purchase(session, member, shop, 80)
            f.redeem(session, member, shop, 80 + (100 if n in welcomed else 0))
            operations.refund(
                session,
                purchase_id=bought["transaction"]["id"],
                merchant_id=shop,
                amount_minor=8000,
                actor=f.TILL,
                now=T0,
            )
    return shop, members


def _line(session, members: list[int], spec: dict[str, Any]) -> Any:
    if spec["kind"] == "garbage":
        return {"amount": "lots"}
    member = members[spec["member"]]
    reference = (
        card_of(session, member)
        if spec["by_card"]
        else session.execute(select(Member.public_id).where(Member.id == member)).scalar_one()
    )
    if spec["kind"] == "unknown":
        reference = "mbr_nobody"
    line = purchase(reference, spec["amount"], f"e-{spec['external']}")
    if spec["kind"] == "dollars":
        line["currency"] = "USD"
    return line


def _answer(outcome: service.Outcome) -> tuple[int, dict[str, Any]]:
    """An outcome as `POST /purchases` answers it: 201, 200 for a replay, or a problem."""
    if isinstance(outcome, CoalitionError):
        return outcome.status, outcome.problem()
    return 200 if outcome.replayed else 201, schemas.PurchaseResultSchema().dump(outcome)


def _batch(session, shop: int, lines: list[Any]) -> list[tuple[int, dict[str, Any]]]:
    """The lines as `POST /purchases/batch` takes them: read, then recorded set-based."""
    parsed = batch.parse_lines(json.dumps(lines).encode(), ndjson=False)
    outcomes: dict[int, service.Outcome] = dict(parsed.refused)
    recorded = service.record_batch(
        session, merchant_id=shop, lines=parsed.lines, actor=f.TILL, now=T0
    )
    outcomes.update(zip([line.number for line in parsed.lines], recorded, strict=True))
    return [_answer(outcomes[number]) for number in sorted(outcomes)]


def _one_by_one(session, shop: int, lines: list[Any]) -> list[tuple[int, dict[str, Any]]]:
    """Each line as `POST /purchases` would take it: validated, then in its own savepoint."""
    answers = []
    for line in lines:
        try:
            valid = schemas.PurchaseSchema().load(line)
        except ValidationError:
            answers.append((422, {"code": "validation_error"}))
            continue
        savepoint = session.begin_nested()
        try:
            answers.append(
                _answer(
                    service.record_purchase(
                        session, merchant_id=shop, purchase=valid, actor=f.TILL, now=T0
                    )
                )
            )
            savepoint.commit()
        except CoalitionError as refusal:
            savepoint.rollback()
            answers.append((refusal.status, refusal.problem()))
    return answers


def _ledger_of(session, members: list[int]) -> list[Any]:
    """What a member would notice, and what settlement reads, without the ids."""
    state = []
    for member in members:
        account = session.execute(
            select(Account.id, Account.balance, Account.debt, Account.welcomed).where(
                Account.member_id == member
            )
        ).one()
        lots = session.execute(
            select(Lot.source, Lot.points, Lot.remaining, Lot.expires_at)
            .where(Lot.account_id == account.id)
            .order_by(Lot.id)
        ).all()
        consumed = session.execute(
            select(LotConsumption.kind, LotConsumption.points)
            .where(LotConsumption.member_account_id == account.id)
            .order_by(LotConsumption.id)
        ).all()
        transfers = session.execute(
            select(Transfer.kind, Transfer.amount)
            .join(Transaction, Transaction.id == Transfer.transaction_id)
            .where(Transaction.member_account_id == account.id)
            .order_by(Transaction.id, Transfer.id)
        ).all()
        state.append((account.balance, account.debt, account.welcomed, lots, consumed, transfers))
    return state


def _comparable(answer: tuple[int, dict[str, Any]], ids: dict[str, int]) -> Any:
    """An answer with its transaction id replaced by the line that first recorded it."""
    status, body = answer
    if status >= 400:
        return status, body["code"]
    transaction = body["transaction"]
    first_line = ids.setdefault(transaction["id"], len(ids))
    return (
        status,
        first_line,
        transaction["points"],
        transaction["breakdown"],
        body["member"]["balance"],
    )


line_specs = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["ok"] * 6 + ["unknown", "dollars", "garbage"]),
        "member": st.integers(0, MEMBERS - 1),
        "by_card": st.booleans(),
        "amount": st.sampled_from([1, 99, 100, 1250, 4999, 10**6]),
        "external": st.integers(0, 7),
    }
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    specs=st.lists(line_specs, min_size=1, max_size=14),
    in_debt=st.sets(st.integers(0, MEMBERS - 1)),
    welcomed=st.sets(st.integers(0, MEMBERS - 1)),
)
def test_a_batch_leaves_the_ledger_as_the_same_purchases_one_by_one(
    session, specs, in_debt, welcomed
):
    example = session.begin_nested()
    try:
        single_shop, single_members = _world(session, in_debt=in_debt, welcomed=welcomed)
        batch_shop, batch_members = _world(session, in_debt=in_debt, welcomed=welcomed)

        singles = _one_by_one(
            session, single_shop, [_line(session, single_members, s) for s in specs]
        )
        lines = [_line(session, batch_members, s) for s in specs]
        batched = _batch(session, batch_shop, lines)

        single_ids: dict[str, int] = {}
        batch_ids: dict[str, int] = {}
        assert [_comparable(a, single_ids) for a in singles] == [
            _comparable(answer, batch_ids) for answer in batched
        ]
        assert _ledger_of(session, single_members) == _ledger_of(session, batch_members)
        events = [
            session.execute(
                select(func.count()).where(OutboxEvent.merchant_id == shop)
            ).scalar_one()
            for shop in (single_shop, batch_shop)
        ]
        assert events[0] == events[1]
        assert verify(session) == []
    finally:
        example.rollback()


_LINE_VALUES = {
    "member": st.one_of(
        st.text(max_size=45),
        st.sampled_from(
            ["6375000000000000", "mbr_abc", " ", "\u00a0", "a\x00b", "\ud800", "x" * 40]
        ),
        st.integers(),
        st.none(),
    ),
    "amount": st.one_of(
        st.integers(min_value=-2, max_value=10**11 + 2),
        st.sampled_from([0, 1, 10**11, 10**11 + 1, True, False, 12.0, 12.5, "12"]),
        st.none(),
    ),
    "currency": st.one_of(st.sampled_from(["EUR", "eur", "EURO", "EU", "EUR\n", "€UR"]), st.text()),
    "external_id": st.one_of(
        st.text(max_size=105), st.sampled_from(["r-1", "\t", "a\x7fb", "y" * 100, "y" * 101])
    ),
}


@settings(max_examples=400, deadline=None)
@given(
    line=st.fixed_dictionaries(
        {},
        optional={**_LINE_VALUES, "store": st.just("Main St"), "balance": st.just(5)},
    )
)
def test_a_usual_line_is_read_as_the_purchase_schema_reads_it(line):
    """The batch checks its usual lines without marshmallow (the CPU a line costs); whatever
    that check lets through the schema loads unchanged, so answers and refusals stay the
    schema's."""
    if batch._plainly_valid(line):
        assert schemas.PurchaseSchema().load(line) == line
    elif line.keys() == {"member", "amount", "currency", "external_id"}:
        # Declined: the schema's answer, whatever it is, is what the line gets.
        parsed = batch.parse_lines(json.dumps([line]).encode(), ndjson=False)
        try:
            expected = schemas.PurchaseSchema().load(line)
        except ValidationError:
            assert parsed.lines == [] and 1 in parsed.refused
        else:
            assert [one.purchase for one in parsed.lines] == [expected]


def test_the_usual_line_a_till_sends_takes_the_quick_check():
    line = {
        "member": "6375 0000 0000 0001",
        "amount": 1250,
        "currency": "EUR",
        "external_id": "r-1",
    }
    assert batch._plainly_valid(line)
    assert not batch._plainly_valid({**line, "amount": True})
    assert not batch._plainly_valid({**line, "external_id": "  "})
    assert not batch._plainly_valid({**line, "store": "Main St"})


@pytest.mark.both_backends
def test_a_line_that_crosses_a_threshold_upgrades_its_member_for_its_later_lines(
    session, client, till
):
    """Decision 179 inside a batch: the line that takes a member over Silver's 500.00 earns at
    its old tier, the member's later lines at Silver's x1.25, as the same purchases sent one by
    one would; the member ends the batch in Silver."""
    member = f.member(session)
    card = card_of(session, member)

    response = client.post(
        BATCH,
        json=[purchase(card, 60000, "big"), purchase(card, 2000, "after")],
        headers=till,
    )

    big, after = (r["body"]["transaction"]["breakdown"] for r in response.get_json()["results"])
    assert (big["base"], big["tier"]) == (600, 0)
    assert (after["base"], after["tier"]) == (20, 5)
    assert response.get_json()["results"][1]["body"]["member"]["tier"] == "Silver"
