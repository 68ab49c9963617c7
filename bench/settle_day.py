"""A first measurement of nightly settlement (QUALITY 1, `settle_vs_scan`, `settle_growth`,
`settle_rss_mb`) ahead of the full harness: builds a PostgreSQL database with one business day of
N award transfers and N redemptions (each a transfer and a lot consumption) over M merchants,
then times a bare `GROUP BY` over the day's transfers and the settlement of that day, in this
process, and reports the process's peak resident memory.

    .venv/bin/python bench/settle_day.py --transfers 500000 --merchants 1000 --members 200000

Rows are written with set-based SQL straight into the ledger's tables (one transaction and one
lot per member stand in for the real history), with the tables' indexes and foreign keys made
again, as the migrations define them, before anything is timed; settlement reads them exactly
as it reads rows the API wrote. The 10,000,000-transfer day builds in about five minutes here."""

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


# The tables the day's rows go into. Their indexes and foreign keys are dropped for the fill and
# made again, from their own definitions (pg_get_indexdef, pg_get_constraintdef: the migrations'),
# before anything is timed: building a b-tree once is far cheaper than growing it row by row.
FILLED = ("transfers", "lots", "lot_consumptions")
DEFINITIONS = """
    SELECT 'index', i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), c.relname
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
    WHERE c.relname = ANY(%(tables)s) AND NOT i.indisprimary
      AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
    UNION ALL
    SELECT 'constraint', k.conname, pg_get_constraintdef(k.oid), c.relname
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
    WHERE c.relname = ANY(%(tables)s) AND k.contype IN ('f', 'u')
"""


def build(url: str, transfers: int, merchants: int, members: int) -> None:
    """The day, written set-based: ids are worked out from the row numbers (award g is transfer
    g, redemption g is transfer `transfers + g`, member n's lot is lot n, made by award n), so
    no row joins another to find its ids."""
    if transfers < members:
        raise SystemExit("--transfers must be at least --members (each member's lot is an award)")
    people = f"""
        INSERT INTO merchants (public_id, name, status, base_rate, created_at)
        SELECT 'mer_bench' || g, 'Shop ' || g, 'active', 1, now()
            FROM generate_series(1, {merchants}) g;
        INSERT INTO accounts (kind, merchant_id) SELECT 'merchant', id FROM merchants ORDER BY id;
        INSERT INTO members (public_id, created_at, card_number, totp_secret)
            SELECT 'mbr_bench' || g, now(), lpad(g::text, 16, '0'), 'JBSWY3DPEHPK3PXP'
            FROM generate_series(1, {members}) g;
        INSERT INTO accounts (kind, member_id, balance)
            SELECT 'member', id, 1000000 FROM members ORDER BY id;
        INSERT INTO transactions (public_id, type, member_account_id, points, actor_type, reason,
                                  created_at)
            SELECT 'txn_bench', 'earn', min(id), 0, 'job', 'bench', '{NOON}'
            FROM accounts WHERE kind = 'member';
    """
    first = "SELECT min(id), max(id) - min(id) + 1, count(*) FROM accounts WHERE kind = %s"
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=False) as connection:
        connection.execute(people)
        (shop, shops, n_shops), (who, whos, n_whos) = (
            connection.execute(first, (kind,)).fetchone() or (0, 0, 0)
            for kind in ("merchant", "member")
        )
        assert shops == n_shops == merchants and whos == n_whos == members, "ids not contiguous"
        txn = connection.execute("SELECT id FROM transactions").fetchone()[0]  # type: ignore[index]
        # Shop n (1-based, by id) is account shop + n - 1, member n is account who + n - 1.
        shop_of = lambda n: f"{shop} + (({n}) - 1)"  # noqa: E731
        who_of = lambda n: f"{who} + (({n}) - 1)"  # noqa: E731
        at = f"'{NOON}'::timestamptz + (g % 36000) * interval '1 second'"
        # Award g: shop 1 + g % merchants awards member 1 + g % members, 1 + g % 50 points.
        # Lot n is award n's (member 1 + n % members, issued by shop 1 + n % merchants).
        # Redemption g: member of lot 1 + g % members spends 1 + g % 30 points at shop
        # 1 + 7g % merchants, one lot consumption from that lot.
        lot = f"(1 + g % {members})"
        fill = f"""
            INSERT INTO transfers (id, transaction_id, kind, debit_account_id, credit_account_id,
                                   amount, created_at)
                SELECT g, {txn}, 'award', {shop_of(f"1 + g % {merchants}")},
                       {who_of(f"1 + g % {members}")}, 1 + g % 50, {at}
                FROM generate_series(1, {transfers}) g;
            INSERT INTO lots (id, account_id, issuer_account_id, transfer_id, source, points,
                              remaining, expires_at, created_at)
                SELECT g, {who_of(f"1 + g % {members}")}, {shop_of(f"1 + g % {merchants}")}, g,
                       'merchant', 1000000, 1000000, '2030-01-01', '{NOON}'
                FROM generate_series(1, {members}) g;
            INSERT INTO transfers (id, transaction_id, kind, debit_account_id, credit_account_id,
                                   amount, created_at)
                SELECT {transfers} + g, {txn}, 'redeem', {who_of(f"1 + {lot} % {members}")},
                       {shop_of(f"1 + (g * 7) % {merchants}")}, 1 + g % 30, {at}
                FROM generate_series(1, {transfers}) g;
            INSERT INTO lot_consumptions (id, transfer_id, lot_id, kind, points, member_account_id,
                                          issuer_account_id, redeemer_account_id, created_at)
                SELECT g, {transfers} + g, {lot}, 'redeem', 1 + g % 30,
                       {who_of(f"1 + {lot} % {members}")}, {shop_of(f"1 + {lot} % {merchants}")},
                       {shop_of(f"1 + (g * 7) % {merchants}")}, {at}
                FROM generate_series(1, {transfers}) g;
        """
        saved = connection.execute(DEFINITIONS, {"tables": list(FILLED)}).fetchall()
        for kind, name, _, table in saved:
            if kind == "index":
                connection.execute(f"DROP INDEX {name}")
            else:
                connection.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        connection.execute(fill)
        for table in FILLED:
            connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
            )
        connection.execute("SET maintenance_work_mem = '512MB'")
        for kind, name, definition, table in saved:
            if kind == "index":
                connection.execute(definition)
            else:
                connection.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        connection.commit()
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as connection:
        # What the API's rows would be by the night after: visible to all and counted.
        connection.execute("VACUUM ANALYZE")


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
