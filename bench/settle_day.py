"""A first measurement of nightly settlement (QUALITY 1, `settle_vs_scan`, `settle_growth`,
`settle_rss_mb`) ahead of the full harness: builds a PostgreSQL database with one business day of
N award transfers and N redemptions (each a transfer and a lot consumption) over M merchants,
then times a bare `GROUP BY` over the day's transfers and the settlement of that day, in this
process, and reports the process's peak resident memory.

    .venv/bin/python bench/settle_day.py --transfers 200000 --merchants 1000

Rows are written with set-based SQL straight into the ledger's tables (one transaction and one
lot per member stand in for the real history), which settlement reads exactly as it reads rows
the API wrote."""

from __future__ import annotations

import argparse
import json
import resource
import time
import uuid
from datetime import UTC, date, datetime

import psycopg
from sqlalchemy import text

from coalition import create_app, tenancy
from coalition.extensions import db
from settlement import runs

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DAY = date(2026, 6, 1)
NOON = "2026-06-01 10:00:00+00"


def build(url: str, transfers: int, merchants: int, members: int) -> None:
    fill = f"""
        INSERT INTO merchants (public_id, name, status, base_rate, created_at)
        SELECT 'mer_bench' || g, 'Shop ' || g, 'active', 1, now()
            FROM generate_series(1, {merchants}) g;
        INSERT INTO accounts (kind, merchant_id) SELECT 'merchant', id FROM merchants;
        INSERT INTO members (public_id, created_at, card_number, totp_secret)
            SELECT 'mbr_bench' || g, now(), lpad(g::text, 16, '0'), 'JBSWY3DPEHPK3PXP'
            FROM generate_series(1, {members}) g;
        INSERT INTO accounts (kind, member_id, balance) SELECT 'member', id, 1000000 FROM members;
        INSERT INTO transactions (public_id, type, member_account_id, points, actor_type, reason,
                                  created_at)
            SELECT 'txn_bench', 'earn', min(id), 0, 'job', 'bench', '{NOON}'
            FROM accounts WHERE kind = 'member';
        CREATE TEMP TABLE shop AS SELECT row_number() OVER (ORDER BY id) AS n, id FROM accounts
            WHERE kind = 'merchant';
        CREATE TEMP TABLE who AS SELECT row_number() OVER (ORDER BY id) AS n, id FROM accounts
            WHERE kind = 'member';
        INSERT INTO transfers (transaction_id, kind, debit_account_id, credit_account_id, amount,
                               created_at)
            SELECT (SELECT id FROM transactions LIMIT 1), 'award', s.id, w.id, 1 + g % 50,
                   '{NOON}'::timestamptz + (g % 36000) * interval '1 second'
            FROM generate_series(1, {transfers}) g
            JOIN shop s ON s.n = 1 + g % {merchants} JOIN who w ON w.n = 1 + g % {members};
        CREATE TEMP TABLE award AS SELECT row_number() OVER (ORDER BY id) AS n, id,
            debit_account_id, credit_account_id FROM transfers WHERE kind = 'award';
        INSERT INTO lots (account_id, issuer_account_id, transfer_id, source, points, remaining,
                          expires_at, created_at)
            SELECT a.credit_account_id, a.debit_account_id, a.id, 'merchant', 1000000, 1000000,
                   '2030-01-01', '{NOON}'
            FROM award a WHERE a.n <= {members};
        CREATE TEMP TABLE lot AS SELECT row_number() OVER (ORDER BY id) AS n, id, account_id,
            issuer_account_id FROM lots;
        INSERT INTO transfers (transaction_id, kind, debit_account_id, credit_account_id, amount,
                               created_at)
            SELECT (SELECT id FROM transactions LIMIT 1), 'redeem', l.account_id, s.id, 1 + g % 30,
                   '{NOON}'::timestamptz + (g % 36000) * interval '1 second'
            FROM generate_series(1, {transfers}) g
            JOIN lot l ON l.n = 1 + g % {members} JOIN shop s ON s.n = 1 + (g * 7) % {merchants};
        INSERT INTO lot_consumptions (transfer_id, lot_id, kind, points, member_account_id,
                                      issuer_account_id, redeemer_account_id, created_at)
            SELECT t.id, l.id, 'redeem', t.amount, t.debit_account_id, l.issuer_account_id,
                   t.credit_account_id, t.created_at
            FROM transfers t JOIN lot l ON l.account_id = t.debit_account_id
            WHERE t.kind = 'redeem';
        ANALYZE;
    """
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=False) as connection:
        connection.execute(fill)
        connection.commit()


def measure(transfers: int, merchants: int, members: int) -> dict[str, float]:
    name = f"coalition_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        app = create_app(
            {
                "DATABASE_URL": url,
                "COALITION_ENV": "production",
                "SECRET_KEY": "bench",
                "COALITION_TIMEZONE": "UTC",
                "LOG_LEVEL": "WARNING",
                "DATABASE_STATEMENT_TIMEOUT_MS": "0",
            }
        )
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
            db.engine.dispose()
        build(url, transfers, merchants, members)
        with app.app_context(), tenancy.acting_as(tenancy.SYSTEM):
            session = db.session()
            session.execute(text("SELECT count(*) FROM transfers")).scalar()  # warm the cache
            started = time.perf_counter()
            # QUALITY's yardstick: a bare GROUP BY merchant, type over the day's rows.
            session.execute(
                text(
                    "SELECT kind, CASE WHEN kind IN ('award', 'reverse') THEN debit_account_id "
                    "ELSE credit_account_id END AS merchant, count(*), sum(amount) "
                    "FROM transfers WHERE created_at >= '2026-06-01' AND created_at < '2026-06-02' "
                    "GROUP BY 1, 2"
                )
            ).all()
            scan = time.perf_counter() - started
            session.rollback()
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            started = time.perf_counter()
            run = runs.settle(session, DAY, datetime(2026, 6, 3, tzinfo=UTC))
            settle = time.perf_counter() - started
            assert run.status == "succeeded", run.error
            db.session.remove()
            db.engine.dispose()
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    return {
        "transfers": 2 * transfers,
        "scan_s": round(scan, 3),
        "settle_s": round(settle, 3),
        "settle_vs_scan": round(settle / scan, 2),
        "rss_before_mb": round(before / 1024, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--transfers", type=int, default=100_000, help="awards (and as many redemptions)"
    )
    parser.add_argument("--merchants", type=int, default=1000)
    parser.add_argument("--members", type=int, default=20_000)
    args = parser.parse_args()
    print(json.dumps(measure(args.transfers, args.merchants, args.members)))
