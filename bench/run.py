"""QUALITY.md §1's harness (`make bench`, `make bench QUICK=1`): measures the platform as
production would run it, next to yardsticks taken in the same run on the same machine, prints a
table and writes `bench/results.json`.

One run:
1. pgbench's tpcb-like at scale 10, 16 clients, in its own database: the write yardstick;
2. a fresh `coalition_bench` database, migrated with `coalition db upgrade`, with members and
   their cards written by COPY and merchants with OAuth clients made by the app's services;
3. `coalition serve` (gunicorn) on it, tokens from the client-credentials flow;
4. wrk (Lua scripts in bench/wrk/) on purchases, batches, balance reads and /healthz;
5. purchase latency at half the peak rate, from an open-loop client in this process;
6. the purchase's own statements (bench/sql/purchase.sql) under pgbench, with no Python in
   front: the most the platform's SQL allows;
7. the settlement figures from bench/settle_day.py, each size in its own process.

Every figure is from one 2-core machine shared by the server, the database and the load
generator: ratios to the yardsticks are what carry over, not the absolute rates."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
ADMIN = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BENCH_DB = "coalition_bench"
PGBENCH_DB = "coalition_bench_pgbench"
HOST, PORT = "127.0.0.1", int(os.environ.get("BENCH_PORT", "8765"))
# Production runs with Redis (README: jobs go to RQ, `coalition worker` runs them). A database
# of its own, flushed at the start; no worker runs, so jobs only queue during the run.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")
# gunicorn's rule of thumb (2 x cores + 1) assumes the database is elsewhere; here PostgreSQL
# and wrk share the 2 cores: 3 gthread workers of 4 threads served as many purchases as 2 of 8
# and more reads, and more than 4 sync workers (docs/benchmarks.md, decision 123).
WORKERS = int(os.environ.get("BENCH_WORKERS", "3"))
SCOPES = "purchases:write members:read"
# The longest one settle_day.py size may take, building included, before it is given up.
SETTLE_LIMIT = float(os.environ.get("BENCH_SETTLE_LIMIT_S", "1200"))
CARD_PREFIX = "6375"

QUALITY_KEYS = (
    "purchase_vs_tpcb",
    "batch_vs_tpcb",
    "balance_vs_health",
    "settle_vs_scan",
    "settle_growth",
    "settle_rss_mb",
    "purchase_p99_over_p50",
)
GOALS = {
    "purchase_vs_tpcb": "≥ 0.5",
    "batch_vs_tpcb": "≥ 4",
    "balance_vs_health": "≥ 0.7",
    "settle_vs_scan": "≤ 1.5",
    "settle_growth": "≤ 11",
    "settle_rss_mb": "≤ 200",
    "purchase_p99_over_p50": "≤ 4",
}


@dataclass(frozen=True)
class Size:
    members: int
    merchants: int
    seconds: int  # each wrk run, and pgbench
    warmup: int
    # settle_day.py: awards (as many redemptions again) at 1x and 10x, merchants, members
    settle_awards: tuple[int, int]
    settle_merchants: int
    settle_members: int


FULL = Size(100_000, 100, 30, 5, (500_000, 5_000_000), 1000, 200_000)
QUICK = Size(1_000, 5, 3, 1, (5_000, 50_000), 100, 2_000)


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def require_tools() -> None:
    missing = [tool for tool in ("wrk", "pgbench") if shutil.which(tool) is None]
    if missing:
        sys.exit(
            f"bench: {' and '.join(missing)} not found; install with"
            " `apt-get install -y wrk postgresql-client` (Debian) and run again"
        )


def database_url(name: str) -> str:
    return ADMIN.rsplit("/", 1)[0] + "/" + name


def recreate(name: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def run(command: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"bench: {' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


# -- the yardstick ---------------------------------------------------------------------------


def pgbench(seconds: int) -> float:
    recreate(PGBENCH_DB)
    url = urllib.parse.urlsplit(ADMIN)
    connection = ["-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432)]
    connection += ["-U", url.username or "postgres"]
    say("pgbench -i -s 10")
    run(["pgbench", *connection, "-i", "-q", "-s", "10", PGBENCH_DB])
    say(f"pgbench -b tpcb-like -s 10 -c 16 -j 2 -T {seconds}")
    out = run(
        [
            "pgbench",
            *connection,
            "-b",
            "tpcb-like",
            "-s",
            "10",
            "-c",
            "16",
            "-j",
            "2",
            "-T",
            str(seconds),
            PGBENCH_DB,
        ]
    )
    found = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    if not found:
        sys.exit(f"bench: no TPS in pgbench's output:\n{out}")
    return float(found.group(1))


def purchase_sql(url: str, seconds: int) -> float | None:
    """TPS of bench/sql/purchase.sql: a purchase's own statements, sent by pgbench as the app's
    role (row-level security on), prepared as psycopg prepares them, on the data `build` made.
    What PostgreSQL alone gives for the platform's SQL."""
    with psycopg.connect(url) as connection:
        merchants = connection.execute("SELECT min(id), max(id) FROM merchants").fetchone()
        members = connection.execute("SELECT min(id), max(id) FROM members").fetchone()
        # One token a merchant, made in the merchants' order (`measure`).
        offsets = connection.execute(
            "SELECT DISTINCT id - merchant_id FROM oauth_tokens WHERE merchant_id IS NOT NULL"
        ).fetchall()
    if not merchants or not members or len(offsets) != 1:
        sys.exit("bench: the tokens are not one a merchant, in order; cannot run purchase.sql")
    target = urllib.parse.urlsplit(url)
    command = ["pgbench", "-h", target.hostname or "127.0.0.1", "-p", str(target.port or 5432)]
    command += ["-U", target.username or "postgres", "-n", "-M", "prepared", "-c", "16", "-j", "2"]
    command += ["-T", str(seconds), "-f", str(HERE / "sql" / "purchase.sql")]
    for name, value in (
        ("first_merchant", merchants[0]),
        ("last_merchant", merchants[1]),
        ("first_member", members[0]),
        ("last_member", members[1]),
        ("token_offset", offsets[0][0]),
    ):
        command += ["-D", f"{name}={value}"]
    done = subprocess.run(
        [*command, target.path.lstrip("/")],
        env={**os.environ, "PGOPTIONS": "-c role=coalition_app"},
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    if done.returncode != 0 or not found:
        # An older schema (a "before" run of earlier code) lacks what the script calls.
        say(f"purchase.sql did not run: {(done.stderr or done.stdout).strip()[-300:]}")
        return None
    return float(found.group(1))


# -- the platform's data ---------------------------------------------------------------------


def app_env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "COALITION_ENV": "production",
        "SECRET_KEY": "bench-secret-key-not-for-production-use",
        "RATELIMIT_ENABLED": "false",
        "REDIS_URL": REDIS_URL,
        "LOG_LEVEL": "WARNING",
        "COALITION_TIMEZONE": "UTC",
    }


def luhn(digits: str) -> str:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def build(url: str, size: Size) -> tuple[list[str], list[tuple[str, str]]]:
    """Members with cards (COPY) and merchants with OAuth clients (the app's services). Returns
    the cards and each client's (id, secret)."""
    from coalition import clock, create_app, tenancy
    from coalition.extensions import db
    from coalition.ids import new_id
    from coalition.oauth import clients
    from merchants.services import create_merchant

    app = create_app({k: v for k, v in app_env(url).items() if k != "REDIS_URL"})
    credentials = []
    with app.app_context(), tenancy.acting_as(tenancy.SYSTEM):
        session = db.session()
        now = clock.utcnow()
        for n in range(size.merchants):
            merchant_id, _ = create_merchant(session, f"Bench shop {n}", status="active", now=now)
            made = clients.create_client(
                session,
                name=f"Bench till {n}",
                merchant_id=merchant_id,
                scopes=set(SCOPES.split()),
                now=now,
            )
            credentials.append((made["client_id"], made["client_secret"]))
        session.commit()
        db.engine.dispose()
    cards = []
    for n in range(size.members):
        body = CARD_PREFIX + f"{n + 10_000_000_000:011d}"[-11:]
        cards.append(body + luhn(body))
    stamp = datetime.now(UTC).isoformat()
    with psycopg.connect(url) as connection:
        with connection.cursor().copy(
            "COPY members (public_id, card_number, status, tier, totp_secret, code_step_used,"
            " code_failures, created_at) FROM STDIN"
        ) as copy:
            for card in cards:
                copy.write_row(
                    (new_id("mbr"), card, "active", "Member", "JBSWY3DPEHPK3PXP", 0, 0, stamp)
                )
        connection.execute(
            "INSERT INTO accounts (kind, member_id) SELECT 'member', id FROM members"
            " WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.member_id = members.id)"
        )
        connection.commit()
        connection.execute("ANALYZE")
    return cards, credentials


def purchases_recorded(url: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT count(*) FROM transactions").fetchone()
        return int(row[0]) if row else 0


# -- the server ------------------------------------------------------------------------------


def serve(url: str, log: Path) -> subprocess.Popen[bytes]:
    flush_redis()
    handle = log.open("wb")
    server = subprocess.Popen(
        [
            str(BIN / "coalition"),
            "serve",
            "--host",
            HOST,
            "--port",
            str(PORT),
            "--workers",
            str(WORKERS),
        ],
        env=app_env(url),
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"bench: `coalition serve` exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{PORT}/healthz", timeout=2):
                return server
        except OSError:
            time.sleep(0.3)
    server.terminate()
    sys.exit(f"bench: `coalition serve` did not answer in 60 s:\n{log.read_text()[-3000:]}")


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def token(client_id: str, secret: str) -> str:
    basic = b64encode(f"{client_id}:{secret}".encode()).decode()
    request = urllib.request.Request(
        f"http://{HOST}:{PORT}/oauth/token",
        data=urllib.parse.urlencode({"grant_type": "client_credentials", "scope": SCOPES}).encode(),
        headers={"Authorization": f"Basic {basic}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return str(json.load(answer)["access_token"])


# -- load ------------------------------------------------------------------------------------


def wrk(
    script: str | None, connections: int, seconds: int, data: Path, tag: str, path: str = "/"
) -> dict[str, Any]:
    command = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    command += ["--timeout", "30s"]
    if script:
        command += ["-s", str(HERE / "wrk" / script)]
    command.append(f"http://{HOST}:{PORT}{path}")
    if script:
        command += ["--", str(data), tag]
    out = run(command)
    requests = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if not requests:
        sys.exit(f"bench: no request count in wrk's output:\n{out}")
    elapsed = float(requests.group(2)) * (1 if requests.group(3) == "s" else 0.001)
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    spread = {
        f"p{share}_ms": round(float(value) * scale[unit], 2)
        for share, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.M)
    }
    return {
        **spread,
        "requests": int(requests.group(1)),
        "seconds": elapsed,
        "failed": int(failed.group(1)) if failed else 0,
        "socket_errors": errors.group(0) if errors else "",
        "per_s": round(
            (int(requests.group(1)) - (int(failed.group(1)) if failed else 0)) / elapsed, 1
        ),
    }


def paced(
    rate: float, seconds: int, cards: list[str], tokens: list[str], tag: str
) -> dict[str, float]:
    """Purchases at `rate` a second from an open-loop schedule (the i-th is due at start + i /
    rate) on 16 keep-alive connections; a latency runs from when the request was due, so a
    stalled server is not hidden by the client waiting for it (as wrk2 does)."""
    total = max(1, int(rate * seconds))
    start = time.perf_counter() + 0.2
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    next_index = [0]

    def worker(n: int) -> None:
        connection = http.client.HTTPConnection(HOST, PORT, timeout=30)
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= total:
                break
            due = start + index / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            body = json.dumps(
                {
                    "member": cards[(index * 7919) % len(cards)],
                    "amount": 1250,
                    "currency": "EUR",
                    "external_id": f"{tag}-{index}",
                }
            )
            headers = {
                "Authorization": f"Bearer {tokens[index % len(tokens)]}",
                "Content-Type": "application/json",
            }
            connection.request("POST", "/api/v1/purchases", body, headers)
            answer = connection.getresponse()
            answer.read()
            done = time.perf_counter()
            with lock:
                latencies.append(done - due)
                if answer.status >= 300:
                    failures[0] += 1
        connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "target_per_s": round(rate, 1),
        "achieved_per_s": round(total / elapsed, 1),
        "requests": total,
        "failed": failures[0],
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
    }


def settle(awards: int, size: Size, limit: float) -> dict[str, Any] | None:
    """settle_day.py's figures at one size, or None when it takes longer than `limit` seconds
    (building the 10x day is most of a full run). Its database is dropped either way."""
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        pattern = "SELECT datname FROM pg_database WHERE datname LIKE 'coalition_bench_%'"
        existing = {row[0] for row in admin.execute(pattern)}
    command = [sys.executable, str(HERE / "settle_day.py"), "--transfers", str(awards)]
    command += ["--merchants", str(size.settle_merchants), "--members", str(size.settle_members)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        say(f"settle_day.py took over {limit:.0f} s: not measured at this size")
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            for (name,) in admin.execute(pattern).fetchall():
                if name not in existing and name not in (BENCH_DB, PGBENCH_DB):
                    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        return None
    if done.returncode != 0:
        sys.exit(f"bench: settle_day.py failed:\n{done.stdout}\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- the run ---------------------------------------------------------------------------------


def measure(size: Size, skip_settle: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {"size": size.__dict__, "workers": WORKERS, "redis": REDIS_URL}
    figures["tpcb_tps"] = round(pgbench(size.seconds), 1)

    url = database_url(BENCH_DB).replace("postgresql://", "postgresql+psycopg://", 1)
    plain_url = database_url(BENCH_DB)
    recreate(BENCH_DB)
    say(f"migrating {BENCH_DB}")
    run([str(BIN / "coalition"), "db", "upgrade"], env=app_env(url))
    say(f"building {size.members:,} members, {size.merchants} merchants with OAuth clients")
    started = time.perf_counter()
    cards, credentials = build(plain_url, size)
    figures["build_s"] = round(time.perf_counter() - started, 1)

    data = Path(tempfile.mkdtemp(prefix="coalition-bench-"))
    log = data / "serve.log"
    say(f"starting `coalition serve --workers {WORKERS}` (log: {log})")
    server = serve(url, log)
    try:
        tokens = [token(client_id, secret) for client_id, secret in credentials]
        (data / "cards.txt").write_text("\n".join(cards) + "\n")
        (data / "tokens.txt").write_text("\n".join(tokens) + "\n")
        tag = f"b{int(time.time())}"

        say("warming up")
        wrk("purchase.lua", 16, size.warmup, data, tag + "w")
        wrk("member.lua", 16, size.warmup, data, tag + "w", "/")
        # This machine's PostgreSQL runs with autovacuum off: without statistics for the tables
        # the warm-up filled, the foreign-key checks keep the sequential scans they were
        # planned with on empty tables, which a running database (autovacuum on) never has.
        say("ANALYZE, as autovacuum would")
        with psycopg.connect(plain_url, autocommit=True) as connection:
            connection.execute("ANALYZE")

        say("wrk: POST /api/v1/purchases, 16 connections")
        before = purchases_recorded(plain_url)
        figures["purchase"] = wrk("purchase.lua", 16, size.seconds, data, tag + "p")
        figures["purchase"]["recorded"] = purchases_recorded(plain_url) - before

        say("wrk: POST /api/v1/purchases/batch, 1,000 a request, 4 connections")
        # Purchases counted in the database, over the time between the two counts: a batch
        # still running when wrk stops is not in wrk's count but is in the database's.
        before, counted = purchases_recorded(plain_url), time.perf_counter()
        figures["batch"] = wrk("batch.lua", 4, size.seconds, data, tag + "b")
        recorded = purchases_recorded(plain_url) - before
        figures["batch"]["recorded"] = recorded
        figures["batch"]["purchases_per_s"] = round(recorded / (time.perf_counter() - counted), 1)

        say("wrk: GET /api/v1/members/{card}, 16 connections")
        figures["balance"] = wrk("member.lua", 16, size.seconds, data, tag + "m")
        say("wrk: GET /healthz, 16 connections")
        figures["healthz"] = wrk(None, 16, size.seconds, data, tag, "/healthz")

        half = figures["purchase"]["per_s"] / 2
        say(f"purchases paced at {half:.0f}/s (half the peak)")
        figures["latency"] = paced(half, size.seconds, cards, tokens, tag + "l")
    finally:
        server.terminate()
        server.wait(timeout=30)

    say("pgbench: bench/sql/purchase.sql, a purchase's statements without the platform")
    sql_tps = purchase_sql(plain_url, size.seconds)
    if sql_tps is not None:
        figures["purchase_sql_tps"] = round(sql_tps, 1)

    if skip_settle:
        say("settlement skipped (--skip-settle)")
    else:
        for label, awards in zip(("settle_1x", "settle_10x"), size.settle_awards, strict=True):
            say(f"settle_day.py: {2 * awards:,} transfers, {size.settle_merchants} merchants")
            measured = settle(awards, size, SETTLE_LIMIT)
            if measured is not None:
                figures[label] = measured
    shutil.rmtree(data, ignore_errors=True)
    return figures


def results(figures: dict[str, Any]) -> dict[str, Any]:
    """QUALITY's keys, each with its ratio (`value`) and the figures it was made from."""
    tpcb = figures["tpcb_tps"]
    purchase, batch = figures["purchase"]["per_s"], figures["batch"]["purchases_per_s"]
    balance, health = figures["balance"]["per_s"], figures["healthz"]["per_s"]
    latency = figures["latency"]
    out: dict[str, Any] = {
        "purchase_vs_tpcb": {
            "value": round(purchase / tpcb, 3),
            "platform": f"{purchase:,.0f} purchases/s",
            "yardstick": f"tpcb-like {tpcb:,.0f} TPS",
        },
        "batch_vs_tpcb": {
            "value": round(batch / tpcb, 3),
            "platform": f"{batch:,.0f} purchases/s in batches",
            "yardstick": f"tpcb-like {tpcb:,.0f} TPS",
        },
        "balance_vs_health": {
            "value": round(balance / health, 3),
            "platform": f"{balance:,.0f} reads/s",
            "yardstick": f"/healthz {health:,.0f}/s",
        },
        "purchase_p99_over_p50": {
            "value": round(latency["p99_ms"] / latency["p50_ms"], 2),
            "platform": f"p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms"
            f" at {latency['achieved_per_s']}/s",
            "yardstick": "—",
        },
    }
    one, ten = figures.get("settle_1x"), figures.get("settle_10x")
    if one:
        out["settle_vs_scan"] = {
            "value": one["settle_vs_scan"],
            "platform": f"settle {one['settle_s']} s ({one['transfers']:,} transfers)",
            "yardstick": f"GROUP BY {one['scan_s']} s",
        }
        peaks = [day["peak_rss_mb"] for day in (one, ten) if day]
        out["settle_rss_mb"] = {
            "value": max(peaks),
            "platform": "peak " + " / ".join(f"{peak} MB" for peak in peaks),
            "yardstick": "—",
        }
    if one and ten:
        out["settle_growth"] = {
            "value": round(ten["settle_s"] / one["settle_s"], 2),
            "platform": f"settle {ten['settle_s']} s ({ten['transfers']:,} transfers)",
            "yardstick": "linear: 10",
        }
    for key, entry in out.items():
        entry["goal"] = GOALS[key]
    entry_order = {key: out[key] for key in QUALITY_KEYS if key in out}
    return entry_order


def table(entries: dict[str, Any]) -> str:
    rows = [("key", "platform", "yardstick", "ratio", "goal")]
    rows += [
        (key, e["platform"], e["yardstick"], str(e["value"]), e["goal"])
        for key, e in entries.items()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes, under two minutes")
    parser.add_argument("--skip-settle", action="store_true", help="no settlement figures")
    args = parser.parse_args()
    require_tools()
    size = QUICK if args.quick else FULL
    started = time.perf_counter()
    figures = measure(size, args.skip_settle)
    entries = results(figures)
    figures["wall_s"] = round(time.perf_counter() - started, 1)
    for key, entry in entries.items():
        entry["figures"] = {
            "purchase_vs_tpcb": ("tpcb_tps", "purchase", "purchase_sql_tps"),
            "batch_vs_tpcb": ("tpcb_tps", "batch"),
            "balance_vs_health": ("balance", "healthz"),
            "purchase_p99_over_p50": ("latency",),
            "settle_vs_scan": ("settle_1x",),
            "settle_growth": ("settle_1x", "settle_10x"),
            "settle_rss_mb": ("settle_1x", "settle_10x"),
        }[key]
        entry["figures"] = {name: figures[name] for name in entry["figures"] if name in figures}
    (HERE / "results.json").write_text(json.dumps(entries, indent=2) + "\n")
    print(table(entries))
    if "purchase_sql_tps" in figures:
        sql = figures["purchase_sql_tps"]
        print(
            f"\nthe purchase's SQL alone (bench/sql/purchase.sql): {sql:,.0f} TPS,"
            f" {sql / figures['tpcb_tps']:.2f} of tpcb-like: the most a purchase can be"
        )
    print(
        f"\nwrote {HERE / 'results.json'} in {figures['wall_s']} s"
        f" ({'quick' if args.quick else 'full'})"
    )
    missing = [key for key in QUALITY_KEYS if key not in entries]
    if missing:
        print(f"not measured: {', '.join(missing)}")


if __name__ == "__main__":
    main()
