"""Issue 16's figure: the insights answered within a second for a year of the benchmark's data.
Builds a PostgreSQL database with a year of trading at the harness's size (bench/run.py's FULL:
100 merchants, 100,000 members) and times, through the app (token, schemas and all), several
times each, reporting the median and the worst: `GET /api/v1/insights` of one merchant over the
year and over its last month; `GET /api/v1/ops/insights` over the year computed live; the
nightly precomputation; and `GET /api/v1/ops/insights` with the default range, answered from
the snapshot (decision 342).

    .venv/bin/python bench/insights_year.py --purchases 3650000 --runs 7

A year: `--purchases` purchases (default 10,000 a day) spread evenly over the operator's
default range (the 12 calendar months to yesterday), each by one of the members at one of the
merchants, a redemption for every tenth, half the members enrolled at a till; each day
settled (a final run, a position per merchant and issuer x redeemer flows); one open lot per
member and some expired points. Rows are written set-based straight into the tables, indexes
and foreign keys made again before timing, as bench/settle_day.py does."""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from coalition import create_app, tenancy
from coalition.extensions import db
from coalition.oauth import clients, scopes, tokens
from insights import services

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ZONE = "Europe/Berlin"
# The year is the operator's default range: the 12 calendar months to yesterday.
_YESTERDAY = datetime.now(ZoneInfo(ZONE)).date() - timedelta(days=1)
_FIRST_MONTH = _YESTERDAY.year * 12 + _YESTERDAY.month - 1 - 11
FIRST = date(_FIRST_MONTH // 12, _FIRST_MONTH % 12 + 1, 1).isoformat()
LAST = _YESTERDAY.isoformat()
FILLED = ("transactions", "transfers", "lots", "lot_consumptions")
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


def build(url: str, purchases: int, merchants: int, members: int) -> None:
    redemptions = purchases // 10
    seconds = (date.fromisoformat(LAST) - date.fromisoformat(FIRST)).days * 86400 + 86399
    people = f"""
        INSERT INTO merchants (public_id, name, status, base_rate, created_at)
        SELECT 'mer_bench' || g, 'Shop ' || g, 'active', 1, '{FIRST}'
            FROM generate_series(1, {merchants}) g;
        INSERT INTO accounts (kind, merchant_id) SELECT 'merchant', id FROM merchants ORDER BY id;
        INSERT INTO members (public_id, created_at, card_number, totp_secret,
                             enrolled_by_merchant_id)
            SELECT 'mbr_bench' || g, '{FIRST}', lpad(g::text, 16, '0'), 'JBSWY3DPEHPK3PXP',
                   CASE WHEN g % 2 = 0 THEN (SELECT min(id) FROM merchants) + g % {merchants}
                   END
            FROM generate_series(1, {members}) g;
        INSERT INTO accounts (kind, member_id, balance)
            SELECT 'member', id, 1000000 FROM members ORDER BY id;
    """
    first = "SELECT min(id), count(*) FROM {0} WHERE {1}"
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=False) as connection:
        connection.execute(people)
        shop, shop_account, who = (
            int(row[0])
            for row in (
                connection.execute(first.format(table, where)).fetchone() or (0, 0)
                for table, where in (
                    ("merchants", "true"),
                    ("accounts", "kind = 'merchant'"),
                    ("accounts", "kind = 'member'"),
                )
            )
        )
        # Purchase g: member 1 + (g * 7919) % members at shop 1 + (g * 31) % merchants, at an
        # even pace through the year; redemption g (every tenth purchase's member) at shop
        # 1 + (g * 17) % merchants.
        at = f"'{FIRST}'::timestamptz + (g::bigint * {seconds} / {purchases}) * interval '1 second'"
        r_at = (
            f"'{FIRST}'::timestamptz + (g::bigint * {seconds} / {redemptions})"
            " * interval '1 second'"
        )
        fill = f"""
            INSERT INTO transactions (id, public_id, type, member_account_id, merchant_id,
                                      external_id, points, amount_minor, currency, actor_type,
                                      reason, created_at)
                SELECT g, 'txn_p' || g, 'earn', {who} + (g::bigint * 7919) % {members},
                       {shop} + (g * 31) % {merchants}, 'p' || g, 5 + g % 95,
                       500 + (g::bigint * 37) % 9500, 'EUR', 'merchant_client', 'purchase', {at}
                FROM generate_series(1, {purchases}) g;
            INSERT INTO transactions (id, public_id, type, member_account_id, merchant_id,
                                      external_id, points, actor_type, reason, created_at)
                SELECT {purchases} + g, 'txn_r' || g, 'redeem',
                       {who} + (g::bigint * 10 * 7919) % {members}, {shop} + (g * 17) % {merchants},
                       'r' || g, 1 + g % 30, 'merchant_client', 'redemption', {r_at}
                FROM generate_series(1, {redemptions}) g;
            INSERT INTO transfers (id, transaction_id, kind, debit_account_id, credit_account_id,
                                   amount, created_at)
                SELECT g, g, 'award', {shop_account} + g % {merchants}, {who} + g - 1, 1000,
                       '{FIRST}'
                FROM generate_series(1, {members}) g;
            INSERT INTO lots (id, account_id, issuer_account_id, transfer_id, source, points,
                              remaining, expires_at, created_at)
                SELECT g, {who} + g - 1, {shop_account} + g % {merchants}, g, 'merchant', 1000,
                       900, '2027-06-01', '{FIRST}'
                FROM generate_series(1, {members}) g;
            INSERT INTO transfers (id, transaction_id, kind, debit_account_id, credit_account_id,
                                   amount, created_at)
                SELECT {members} + g, {purchases} + g, 'redeem',
                       {who} + (g::bigint * 10 * 7919) % {members},
                       {shop_account} + (g * 17) % {merchants},
                       1 + g % 30, {r_at}
                FROM generate_series(1, {redemptions}) g;
            INSERT INTO lot_consumptions (id, transfer_id, lot_id, kind, points,
                                          member_account_id, issuer_account_id,
                                          redeemer_account_id, created_at)
                SELECT g, {members} + g, 1 + (g::bigint * 10 * 7919) % {members},
                       CASE WHEN g % 8 = 0 THEN 'expire' ELSE 'redeem' END, 1 + g % 30,
                       {who} + (g::bigint * 10 * 7919) % {members},
                       {shop_account} + (1 + (g::bigint * 10 * 7919) % {members}) % {merchants},
                       {shop_account} + (g * 17) % {merchants}, {r_at}
                FROM generate_series(1, {redemptions}) g;
        """
        saved = connection.execute(DEFINITIONS, {"tables": list(FILLED)}).fetchall()
        for kind, name, _, table in saved:
            if kind == "index":
                connection.execute(f"DROP INDEX {name}")
            else:
                connection.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        connection.execute(fill)
        # Each day settled: a final run, a position per merchant, ten flows per merchant.
        connection.execute(f"""
            INSERT INTO settlement_runs (public_id, business_date, kind, status, window_start,
                                         window_end, currency, funding_model, attempts,
                                         created_at)
                SELECT 'run_b' || d::date, d::date, 'final', 'succeeded', d, d + interval '1 day',
                       'EUR', 'prefunded', 1, d + interval '1 day'
                FROM generate_series('{FIRST}'::timestamptz, '{LAST}'::timestamptz,
                                     interval '1 day') d;
            INSERT INTO settlement_positions (run_id, merchant_id, issued, confirmed, redeemed,
                                              expired, clawed_back, reversed, owed, receivable,
                                              net, components)
                SELECT r.id, m.id, 5000, 0, 300, 0, 0, 0, '62.5', '3.00', '59.5', '{{}}'
                FROM settlement_runs r CROSS JOIN merchants m;
            INSERT INTO settlement_flows (run_id, issuer_merchant_id, redeemer_merchant_id,
                                          points, amount)
                SELECT r.id, m.id, (SELECT min(id) FROM merchants) + (m.id * 7 + k) % {merchants},
                       30, '0.30'
                FROM settlement_runs r CROSS JOIN merchants m CROSS JOIN generate_series(1, 10) k;
        """)
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
        connection.execute("VACUUM ANALYZE")


def _times(call: object, count: int) -> dict[str, float]:
    spent = []
    for _ in range(count):
        started = time.perf_counter()
        response = call()  # type: ignore[operator]
        spent.append(time.perf_counter() - started)
        assert response.status_code == 200, response.get_data(as_text=True)
    return {"median_s": round(statistics.median(spent), 3), "worst_s": round(max(spent), 3)}


def measure(purchases: int, merchants: int, members: int, count: int) -> dict[str, object]:
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
                "COALITION_TIMEZONE": ZONE,
                "LOG_LEVEL": "WARNING",
                "DATABASE_STATEMENT_TIMEOUT_MS": "0",
            }
        )
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
            db.engine.dispose()
        started = time.perf_counter()
        build(url, purchases, merchants, members)
        built = time.perf_counter() - started
        with app.app_context():
            session = db.session()
            now = datetime(2026, 6, 1, 12, tzinfo=UTC)
            with tenancy.acting_as(tenancy.SYSTEM, session):
                shop = session.execute(
                    db.text("SELECT id FROM merchants ORDER BY id LIMIT 1")
                ).scalar_one()
                headers = {}
                for kind, merchant_id, scope in (
                    ("merchant", shop, "transactions:read"),
                    ("operator", None, "operator"),
                ):
                    made = clients.create_client(
                        session,
                        name="bench",
                        merchant_id=merchant_id,
                        scopes=scopes.parse(scope),
                        now=now,
                    )
                    token = tokens.issue_token(
                        session,
                        client_id=made["client_id"],
                        scope=scope,
                        member_id=None,
                        now=datetime.now(UTC),
                        expires_in=timedelta(hours=1),
                    )
                    headers[kind] = {"Authorization": f"Bearer {token}"}
                session.commit()
            db.session.remove()
        client = app.test_client()
        query = f"from={FIRST}&to={LAST}"
        merchant = _times(
            lambda: client.get(f"/api/v1/insights?{query}", headers=headers["merchant"]), count
        )
        merchant_month = _times(
            lambda: client.get(
                f"/api/v1/insights?from={LAST[:8]}01&to={LAST}", headers=headers["merchant"]
            ),
            count,
        )
        live = _times(
            lambda: client.get(f"/api/v1/ops/insights?{query}", headers=headers["operator"]),
            count,
        )
        with app.app_context():
            started = time.perf_counter()
            services.precompute(db.session(), date.fromisoformat(LAST), datetime.now(UTC), ZONE)
            db.session.commit()
            nightly = time.perf_counter() - started
            db.session.remove()
        snapshot = _times(
            lambda: client.get("/api/v1/ops/insights", headers=headers["operator"]), count
        )
        assert client.get("/api/v1/ops/insights", headers=headers["operator"]).json["as_of"]
        with app.app_context():
            db.engine.dispose()
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    return {
        "purchases": purchases,
        "redemptions": purchases // 10,
        "merchants": merchants,
        "members": members,
        "build_s": round(built, 1),
        "runs": count,
        "merchant_insights": merchant,
        "merchant_insights_one_month": merchant_month,
        "operator_insights_live": live,
        "nightly_precompute_s": round(nightly, 1),
        "operator_insights_default_from_snapshot": snapshot,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--purchases", type=int, default=3_650_000, help="in the year")
    parser.add_argument("--merchants", type=int, default=100)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(measure(args.purchases, args.merchants, args.members, args.runs)))
