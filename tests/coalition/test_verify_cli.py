"""`coalition verify-ledger` as the operator runs it against the live database: silent agreement
on a sound ledger, and a named failure when someone with superuser rights has edited an entry
behind the ledger's back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from coalition.extensions import db
from coalition.ledger.verify import CHECKS
from tests import factories as f

# Raising the first transfer (an award) touches its transaction's total, its member's balance
# and the lot it created, and nothing else.
BROKEN_BY_TAMPERING = {"transaction_totals", "member_balances", "lot_origin"}
FIRST_TRANSFER = "(SELECT min(id) FROM transfers)"


@pytest.fixture
def ledger(committed):
    """A member who bought at two shops and spent some points, committed for every connection."""
    with committed.app_context():
        grocer, baker = f.merchant(db.session, "Grocer"), f.merchant(db.session, "Baker")
        alice = f.member(db.session)
        f.purchase(db.session, alice, grocer, 120)
        f.purchase(db.session, alice, baker, 40, tier=5)
        f.redeem(db.session, alice, baker, 70)
        db.session.commit()
    return committed


@contextmanager
def _as_superuser_in_replica_mode(app) -> Iterator[Connection]:
    """The only way past the immutability triggers: session_replication_role = replica."""
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(text("SET LOCAL ROLE NONE"))  # the owner, not the app's role
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        yield connection


@contextmanager
def _tampered(app) -> Iterator[None]:
    """Seven points more on the first transfer, for the length of the block; repaired after, so
    the test leaves a sound ledger behind."""
    with _as_superuser_in_replica_mode(app) as connection:
        connection.execute(
            text(f"UPDATE transfers SET amount = amount + 7 WHERE id = {FIRST_TRANSFER}")
        )
    try:
        yield
    finally:
        with _as_superuser_in_replica_mode(app) as connection:
            connection.execute(
                text(f"UPDATE transfers SET amount = amount - 7 WHERE id = {FIRST_TRANSFER}")
            )


def _verify(runner, *args):
    return runner.invoke(args=["verify-ledger", *args])


def _verdicts(output: str) -> dict[str, str]:
    """check name -> "ok" or "FAIL", from the human output (row lines are indented)."""
    verdicts = {}
    for line in output.splitlines():
        if not line.startswith(" "):
            verdict, name = line.split()[:2]
            verdicts[name.rstrip(":")] = verdict
    return verdicts


def test_a_sound_ledger_passes_every_check(ledger, runner):
    result = _verify(runner)

    assert result.exit_code == 0, result.output
    assert _verdicts(result.output) == {check.name: "ok" for check in CHECKS}


def test_a_sound_ledger_in_json_says_ok_and_lists_what_it_checked(ledger, runner):
    result = _verify(runner, "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "ok": True,
        "checked": [check.name for check in CHECKS],
        "violations": [],
    }


def test_an_ordinary_update_of_a_ledger_entry_is_refused_by_the_database(ledger, runner):
    with (
        pytest.raises(IntegrityError, match="ledger entries are immutable"),
        ledger.app_context(),
        db.engine.begin() as connection,
    ):
        connection.execute(
            text(f"UPDATE transfers SET amount = amount + 7 WHERE id = {FIRST_TRANSFER}")
        )

    assert _verify(runner).exit_code == 0


def test_a_transfer_edited_by_a_superuser_fails_verification_and_names_what_broke(ledger, runner):
    with _tampered(ledger):
        result = _verify(runner)

    assert result.exit_code == 1
    verdicts = _verdicts(result.output)
    assert {name for name, verdict in verdicts.items() if verdict == "FAIL"} == BROKEN_BY_TAMPERING
    assert set(verdicts) == {check.name for check in CHECKS}
    # The offending rows are shown under each failure: the balance is 7 short of its entries.
    [balance_row] = [
        json.loads(line)
        for before, line in pairwise(result.output.splitlines())
        if before.startswith("FAIL member_balances")
    ]
    assert balance_row["entries"] - balance_row["balance"] == 7


def test_a_transfer_edited_by_a_superuser_is_listed_in_the_json_violations(ledger, runner):
    with _tampered(ledger):
        result = _verify(runner, "--json")

    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False
    violations = {v["check"]: v for v in report["violations"]}
    assert set(violations) == BROKEN_BY_TAMPERING
    [total] = violations["transaction_totals"]["rows"]
    assert total["transferred"] - total["points"] == 7
    [lot] = violations["lot_origin"]["rows"]
    assert lot["amount"] - lot["points"] == 7


def test_once_the_edit_is_undone_the_ledger_verifies_again(ledger, runner):
    with _tampered(ledger):
        assert _verify(runner).exit_code == 1

    assert _verify(runner).exit_code == 0
