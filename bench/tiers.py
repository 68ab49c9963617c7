"""The nightly tier recalculation at scale (issue 13: "fast at a million members"): builds a
PostgreSQL database with N members and M purchases spread over 13 months (one in twenty refunded
in part a few days later), then times `coalition.members.tiers.recalculate` in this process, as
the daily job runs it (the app's role, the system tenant, row-level security on):

- `first`: the night after the last day of purchases, every member still in the tier it joined
  in (the worst night: most members change tier, one event each);
- `steady`: the next night, a day's purchases aging out of the window (an ordinary night);
- `again`: the same night once more (nothing to change: what a rerun after a crash costs);
- `scan`: a bare GROUP BY member over the window's purchases, the yardstick.

    .venv/bin/python bench/tiers.py --members 1000000 --purchases 8000000
    .venv/bin/python bench/tiers.py --members 1000000 --purchases 8000000 --keep  # reuse it

Rows are written with set-based SQL straight into the tables (the ledger's other tables are not
needed by the recalculation), with the transactions' indexes and foreign keys made again, as the
migrations define them, before anything is timed. `--keep` leaves the database
(`coalition_bench_tiers`) for another run, which then skips the build."""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, date, datetime

import psycopg
from sqlalchemy import text, update

from coalition import create_app, tenancy
from coalition.extensions import db
from coalition.members import tiers
from coalition.members.models import Member

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
NAME = "coalition_bench_tiers"
FIRST_DAY = date(2025, 10, 1)  # the first day with purchases
LAST_DAY = date(2026, 10, 31)  # the last: 396 days, 13 months
MERCHANTS = 50

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
FILLED = ("transactions", "members", "accounts")


def build(url: str, members: int, purchases: int) -> None:
    """Member n is account `who + n - 1`; purchase g is member 1 + (g * 7919) % members's, of an
    amount that depends on the member (some spend little, one in a hundred a lot), made at a
    moment spread evenly over the 13 months; refund g (one per twenty purchases) returns half
    of purchase 20g four days after it."""
    days = (LAST_DAY - FIRST_DAY).days + 1
    refunds = purchases // 20
    start = f"'{FIRST_DAY.isoformat()} 08:00:00+00'::timestamptz"
    with psycopg.connect(url, autocommit=False) as connection:
        connection.execute(f"""
            INSERT INTO merchants (public_id, name, status, base_rate, created_at)
                SELECT 'mer_bench' || g, 'Shop ' || g, 'active', 1, now()
                FROM generate_series(1, {MERCHANTS}) g;
            INSERT INTO accounts (kind, merchant_id) SELECT 'merchant', id FROM merchants
                ORDER BY id;
        """)
        saved = connection.execute(DEFINITIONS, {"tables": list(FILLED)}).fetchall()
        for kind, name, _, table in saved:
            if kind == "index":
                connection.execute(f"DROP INDEX {name}")
            else:
                connection.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        connection.execute(f"""
            INSERT INTO members (public_id, created_at, card_number, totp_secret)
                SELECT 'mbr_bench' || g, now(), lpad(g::text, 16, '0'), 'JBSWY3DPEHPK3PXP'
                FROM generate_series(1, {members}) g;
            INSERT INTO accounts (kind, member_id, balance)
                SELECT 'member', id, 0 FROM members ORDER BY id;
        """)
        shop, who, count = connection.execute(
            "SELECT (SELECT min(id) FROM merchants), min(id), count(*) FROM accounts"
            " WHERE kind = 'member'"
        ).fetchone()  # type: ignore[misc]
        assert count == members
        member = f"(1 + (g * 7919) % {members})"
        amount = (
            f"((1 + {member} % 40) * 800 + (g % 97) * 10)"
            f" * CASE WHEN {member} % 100 = 0 THEN 10 ELSE 1 END"
        )
        at = f"{start} + ((g % {days}) * interval '1 day') + ((g % 600) * interval '1 minute')"
        connection.execute(f"""
            INSERT INTO transactions (id, public_id, type, member_account_id, merchant_id,
                                      external_id, points, amount_minor, currency, actor_type,
                                      reason, created_at)
                SELECT g, 'txn_p' || g, 'earn', {who} - 1 + {member}, {shop} + g % {MERCHANTS},
                       'p' || g, {amount} / 100, {amount}, 'EUR', 'merchant_client', 'purchase',
                       {at}
                FROM generate_series(1::bigint, {purchases}) g;
            INSERT INTO transactions (id, public_id, type, member_account_id, merchant_id,
                                      external_id, points, amount_minor, currency, original_id,
                                      actor_type, reason, created_at)
                SELECT {purchases} + r, 'txn_r' || r, 'refund', p.member_account_id,
                       p.merchant_id, 'r' || r, p.points / 2, p.amount_minor / 2, 'EUR', p.id,
                       'merchant_client', 'refund', p.created_at + interval '4 days'
                FROM generate_series(1, {refunds}) r JOIN transactions p ON p.id = r * 20;
            SELECT setval(pg_get_serial_sequence('transactions', 'id'), max(id))
                FROM transactions;
        """)
        connection.execute("SET maintenance_work_mem = '512MB'")
        for kind, name, definition, table in saved:
            if kind == "index":
                connection.execute(definition)
            else:
                connection.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        connection.commit()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


def _timed(app: object, day: date) -> tuple[float, int]:
    with tenancy.acting_as(tenancy.SYSTEM):
        session = db.session()
        started = time.perf_counter()
        done = tiers.recalculate(session, day, datetime(2026, 11, 2, 3, tzinfo=UTC))
        session.commit()
        return time.perf_counter() - started, done.changed


def measure(members: int, purchases: int, keep: bool) -> dict[str, object]:
    url = ADMIN.rsplit("/", 1)[0] + "/" + NAME
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (NAME,)).fetchone()
        if exists and keep:
            # Kept from a run whose build finished (a failed one left no member).
            with psycopg.connect(url) as kept:
                found = kept.execute(
                    "SELECT to_regclass('members') IS NOT NULL"
                    " AND EXISTS (SELECT 1 FROM transactions)"
                ).fetchone()
            exists = found if found and found[0] else None
            if not exists:
                admin.execute(f'DROP DATABASE "{NAME}" WITH (FORCE)')
        if exists and not keep:
            admin.execute(f'DROP DATABASE "{NAME}" WITH (FORCE)')
        if not exists or not keep:
            admin.execute(f'CREATE DATABASE "{NAME}"')
    app = create_app(
        {
            "DATABASE_URL": url.replace("postgresql://", "postgresql+psycopg://", 1),
            "COALITION_ENV": "production",
            "SECRET_KEY": "bench",
            "COALITION_TIMEZONE": "UTC",
            "LOG_LEVEL": "WARNING",
            "DATABASE_STATEMENT_TIMEOUT_MS": "0",
        }
    )
    built = 0.0
    if not (exists and keep):
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
            db.engine.dispose()
        started = time.perf_counter()
        build(url, members, purchases)
        built = time.perf_counter() - started
    try:
        with app.app_context():
            with tenancy.acting_as(tenancy.SYSTEM):
                # Every member back in the tier it joined in: the first night's state.
                db.session.execute(update(Member).values(tier="Member"))
                db.session.commit()
                counted = (
                    db.session.execute(text("SELECT count(*) FROM members")).scalar_one(),
                    db.session.execute(text("SELECT count(*) FROM transactions")).scalar_one(),
                )
                since = tiers.window_start(LAST_DAY, "UTC")
                started = time.perf_counter()
                db.session.execute(
                    text(
                        "SELECT member_account_id, sum(amount_minor) FROM transactions"
                        " WHERE type = 'earn' AND created_at >= :since GROUP BY 1"
                    ),
                    {"since": since},
                ).all()
                scan = time.perf_counter() - started
                db.session.rollback()
            first, first_changed = _timed(app, LAST_DAY)
            steady, steady_changed = _timed(app, date(2026, 11, 1))
            again, again_changed = _timed(app, date(2026, 11, 1))
            with tenancy.acting_as(tenancy.SYSTEM):
                counts = tiers.tier_counts(db.session())
            db.session.remove()
            db.engine.dispose()
    finally:
        if not keep:
            with psycopg.connect(ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{NAME}" WITH (FORCE)')
    return {
        "members": counted[0],
        "transactions": counted[1],
        "build_s": round(built, 1),
        "scan_s": round(scan, 2),
        "first_s": round(first, 2),
        "first_changed": first_changed,
        "steady_s": round(steady, 2),
        "steady_changed": steady_changed,
        "again_s": round(again, 2),
        "again_changed": again_changed,
        "tiers": dict(counts),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--purchases", type=int, default=800_000)
    parser.add_argument("--keep", action="store_true", help="keep (or reuse) the database")
    args = parser.parse_args()
    print(json.dumps(measure(args.members, args.purchases, args.keep)))
