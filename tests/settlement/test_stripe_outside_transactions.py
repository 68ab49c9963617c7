"""No database transaction stays open while the platform waits on Stripe (issue 9, point 18).
On SQLite every transaction holds the write lock from its first statement (BEGIN IMMEDIATE),
so one held across a Stripe call (with its time-outs and retries) stalls every write of the
platform, token requests included, for as long as Stripe takes. The rule is checked here on
PostgreSQL, where an open transaction is visible from outside: at every call into the gateway,
no connection of the app is `idle in transaction`."""

from __future__ import annotations

from typing import Any

import psycopg
from flask import Flask
from sqlalchemy import select

from coalition.database import table
from coalition.extensions import db
from merchants.models import Merchant
from settlement import payments, tasks
from settlement.gateway import EXTENSION
from tests import factories
from tests.factories import statement
from tests.settlement.test_payments import NOW
from tests.stripe_standin import stripe_for


def _open_transactions(url: str) -> list[str]:
    """The queries of every other connection to the database that sits in an open
    transaction."""
    with psycopg.connect(url) as probe:
        rows = probe.execute(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%%'"
        ).fetchall()
    return [row[0] for row in rows]


class Watching:
    """The app's gateway, noting the transactions open at each call."""

    def __init__(self, real: Any, url: str) -> None:
        self.real = real
        self.url = url
        self.seen: list[tuple[str, list[str]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)
        if not callable(method):
            return method

        def watched(*args: Any, **kwargs: Any) -> Any:
            self.seen.append((name, _open_transactions(self.url)))
            return method(*args, **kwargs)

        return watched


def _watching(app: Flask, url: str) -> Watching:
    watching = Watching(app.extensions[EXTENSION], url)
    app.extensions[EXTENSION] = watching
    return watching


def test_the_payments_job_holds_no_transaction_while_it_calls_stripe(
    committed: Flask, postgres_url: str
) -> None:
    with committed.app_context():
        paid_to = factories.merchant(db.session, "Paid")
        paying = factories.merchant(db.session, "Paying")
        payments.instruct(db.session, statement(db.session, paid_to, "-0.78"), NOW)
        payments.instruct(db.session, statement(db.session, paying, "1.20"), NOW)
        db.session.commit()

        with stripe_for(committed) as stripe:
            watching = _watching(committed, postgres_url)
            outcome = tasks.submit_payments(NOW.isoformat())

    assert outcome == {"succeeded": 1, "submitted": 1}
    assert len(stripe.all("transfer")) == len(stripe.all("invoice")) == 1
    called = [name for name, _ in watching.seen]
    assert {"create_account", "create_customer", "create_transfer", "send_invoice"} <= set(called)
    assert [(name, held) for name, held in watching.seen if held] == []


def test_the_onboarding_link_is_made_with_no_transaction_open(
    committed: Flask, postgres_url: str
) -> None:
    with committed.app_context():
        shop = factories.merchant(db.session, "Blumen")
        public_id = db.session.execute(
            select(table(Merchant).c.public_id).where(table(Merchant).c.id == shop)
        ).scalar_one()
        ops = factories.operator_headers(db.session)
        db.session.commit()

        with stripe_for(committed):
            watching = _watching(committed, postgres_url)
            response = committed.test_client().post(
                f"/api/v1/ops/merchants/{public_id}/stripe-account-link",
                json={
                    "return_url": "https://ops.example/b",
                    "refresh_url": "https://ops.example/a",
                },
                headers=ops,
            )

    assert response.status_code == 201, response.get_data(as_text=True)
    assert [name for name, _ in watching.seen] == ["create_account", "create_account_link"]
    assert [(name, held) for name, held in watching.seen if held] == []
