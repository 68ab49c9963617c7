"""Issue 14 point 5: does webhook delivery keep up with the purchase rate, and does one dead
endpoint slow the others? (`.venv/bin/python bench/webhook_deliveries.py [--quick]`)

Each run, on a fresh `coalition_bench_webhooks` database migrated with `coalition db upgrade`:
1. 100 merchants with one endpoint each (the app's `create_merchant`; the endpoint rows written
   directly, with a real `whsec_` secret), all pointing at bench/webhook_receiver.py: HTTPS on
   127.0.0.1 with a throw-away CA (trustme), answering 200 at once with keep-alive. Its own
   ceiling is measured first, with wrk, so it is known not to be the limit;
2. the backlog: `--events` `purchase.created` events (20,000; --quick 2,000) written to the
   outbox by COPY, spread evenly over the merchants, before anything runs;
3. the real `coalition worker` (RQ on a private redis-server; the pump and the default number
   of webhook work horses) started, and timed until every delivery to a live endpoint has
   succeeded: deliveries a second, from the receiver's first arrival to its last;
4. then events written at a steady rate (the single-purchase rate of docs/benchmarks.md, or
   half the drain rate if that is lower) for `--paced` seconds: the latency from an event's
   commit to its arrival at the receiver, median and p99.

The second run is the same with the first merchant's endpoint pointing at a path the receiver
reads and never answers; WEBHOOKS_TIMEOUT_SECONDS is 2 in both runs (15 in production) so the
dead endpoint's attempts end within the bench. The other 99 endpoints' rate and latency are
printed beside the first run's 100.

The worker runs with COALITION_ENV=development: production refuses WEBHOOKS_ALLOW_PRIVATE, and
the receiver is on 127.0.0.1. Every figure is from one 2-core machine shared by the database,
the worker, the receiver and this script."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
# Run as a script, bench/ is first on the path: it comes off, so nothing here can hide a package
# of ours, and bench/run.py's helpers are loaded by their path.
sys.path[:] = [entry for entry in sys.path if Path(entry or os.curdir).resolve() != HERE]
_spec = importlib.util.spec_from_file_location("bench_run", HERE / "run.py")
assert _spec is not None and _spec.loader is not None
harness = sys.modules["bench_run"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)
ADMIN, BIN, ROOT = harness.ADMIN, harness.BIN, harness.ROOT
database_url, recreate, run, say = harness.database_url, harness.recreate, harness.run, harness.say
DB = "coalition_bench_webhooks"
ENDPOINTS = 100
RECEIVER_PROCESSES = 2
TIMEOUT_SECONDS = "2"
# docs/benchmarks.md, "Issue 13: the harness after the programme".
PURCHASES_PER_S = 431
BATCH_PURCHASES_PER_S = 3109
# How long the backlog may take before the bench gives up on it.
DRAIN_LIMIT_S = float(os.environ.get("BENCH_DRAIN_LIMIT_S", "1800"))
TICK = 0.02


@dataclass(frozen=True)
class Size:
    events: int
    paced_seconds: int
    wrk_seconds: int


FULL = Size(20_000, 20, 5)
QUICK = Size(2_000, 5, 2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the receiver ----------------------------------------------------------------------------


class Receiver:
    def __init__(self, workdir: Path) -> None:
        import trustme

        self.dir = workdir
        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_bundle = str(workdir / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_bundle)
        self.cert = str(workdir / "server.pem")
        self.key = str(workdir / "server.key")
        issued.cert_chain_pems[0].write_to_path(self.cert)
        issued.private_key_pem.write_to_path(self.key)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.round = 0

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self.round += 1
        out = self.dir / f"arrivals-{self.round}"
        self.out = out
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "webhook_receiver.py"),
                "--port",
                str(self.port),
                "--cert",
                self.cert,
                "--key",
                self.key,
                "--out",
                str(out),
                "--processes",
                str(RECEIVER_PROCESSES),
            ]
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        sys.exit("bench: the receiver did not start")

    def stop(self) -> list[tuple[str, str, float]]:
        """Stop it; every request it saw: (webhook-id, path, arrival time)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        self.process = None
        arrivals = []
        for part in self.dir.glob(f"{self.out.name}.*"):
            for line in part.read_text().splitlines():
                webhook_id, path, moment = line.split(" ")
                arrivals.append((webhook_id, path, float(moment)))
            part.unlink()
        return arrivals

    def ceiling(self, seconds: int) -> dict[str, Any]:
        """The receiver alone under wrk: 16 keep-alive connections posting a webhook-sized
        body."""
        script = self.dir / "post.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.body = string.rep("x", 700)\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            'wrk.headers["webhook-id"] = "evt_wrk"\n'
        )
        self.start()
        out = run(
            [
                "wrk",
                "-t",
                "2",
                "-c",
                "16",
                "-d",
                f"{seconds}s",
                "-s",
                str(script),
                self.url("/hook"),
            ]
        )
        self.stop()
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if not found:
            sys.exit(f"bench: no rate in wrk's output:\n{out}")
        return {"requests_per_s": round(float(found.group(1))), "connections": 16}


# -- Redis, the database, the worker ---------------------------------------------------------


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    sys.exit("bench: redis-server did not start")


def worker_env(url: str, redis_url: str, ca_bundle: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "COALITION_ENV": "development",
        "SECRET_KEY": "bench-secret-key-not-for-production-use",
        "REDIS_URL": redis_url,
        "LOG_LEVEL": "WARNING",
        "COALITION_TIMEZONE": "UTC",
        "WEBHOOKS_ALLOW_PRIVATE": "true",
        "WEBHOOKS_CA_BUNDLE": ca_bundle,
        "WEBHOOKS_TIMEOUT_SECONDS": TIMEOUT_SECONDS,
    }


def build(url: str, env: dict[str, str], urls: list[str]) -> list[int]:
    """One merchant per endpoint URL, each with one endpoint listening to every event. Returns
    the merchants' ids, in the order of `urls`."""
    from coalition import clock, create_app, tenancy
    from coalition.extensions import db
    from coalition.ids import new_id
    from merchants.services import create_merchant
    from webhooks.models import webhook_endpoints
    from webhooks.signing import new_secret

    app = create_app({k: v for k, v in env.items() if k != "REDIS_URL"})
    merchants = []
    with app.app_context(), tenancy.acting_as(tenancy.SYSTEM):
        session = db.session()
        now = clock.utcnow()
        for n, endpoint_url in enumerate(urls):
            merchant_id, _ = create_merchant(session, f"Bench shop {n}", status="active", now=now)
            session.execute(
                webhook_endpoints.insert().values(
                    public_id=new_id("whe"),
                    merchant_id=merchant_id,
                    url=endpoint_url,
                    description=f"bench endpoint {n}",
                    events=None,
                    enabled=True,
                    secret=new_secret(),
                    created_at=now,
                )
            )
            merchants.append(merchant_id)
        session.commit()
        db.engine.dispose()
    return merchants


def event_data(n: int) -> str:
    """A purchase's `data` as the API represents a transaction (about 500 bytes)."""
    return json.dumps(
        {
            "transaction": {
                "id": f"txn_bench{n:012d}",
                "kind": "purchase",
                "member": f"mbr_bench{n % 997:08d}",
                "merchant": "mer_bench",
                "amount": 1250,
                "currency": "EUR",
                "points": 12,
                "parts": {"base": 12},
                "external_id": f"bench-{n}",
                "status": "posted",
                "balance_after": 1200 + n % 100,
                "created_at": datetime.now(UTC).isoformat(),
            }
        }
    )


def write_events(connection: psycopg.Connection[Any], merchants: list[int], first: int, count: int):
    """`count` purchase.created events, round robin over `merchants`, committed now. Returns
    {evt id: (merchant, created_at epoch seconds)}."""
    from coalition.ids import new_id

    written = {}
    moment = datetime.now(UTC)
    with connection.cursor().copy(
        "COPY outbox_events (public_id, type, merchant_id, data, created_at) FROM STDIN"
    ) as copy:
        for n in range(first, first + count):
            public_id = new_id("evt")
            merchant = merchants[n % len(merchants)]
            copy.write_row((public_id, "purchase.created", merchant, event_data(n), moment))
            written[public_id] = merchant
    connection.commit()
    committed = time.time()
    return {public_id: (merchant, committed) for public_id, merchant in written.items()}


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`coalition worker` in a session of its own, so stopping it stops all its processes."""
    handle = log.open("ab")
    return subprocess.Popen(
        [str(BIN / "coalition"), "worker"],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=20)
    except ProcessLookupError:
        pass
    with contextlib.suppress(ProcessLookupError):  # what the worker started and left behind
        os.killpg(worker.pid, signal.SIGKILL)


def succeeded(connection: psycopg.Connection[Any], merchants: list[int]) -> int:
    row = connection.execute(
        "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'"
        " AND merchant_id = ANY(%s)",
        (merchants,),
    ).fetchone()
    connection.commit()
    return int(row[0]) if row else 0


def wait_for(
    connection: psycopg.Connection[Any],
    merchants: list[int],
    expected: int,
    limit: float,
    worker: subprocess.Popen[bytes],
    log: Path,
) -> bool:
    deadline = time.monotonic() + limit
    last_said = time.monotonic()
    while time.monotonic() < deadline:
        done = succeeded(connection, merchants)
        if done >= expected:
            return True
        if worker.poll() is not None:
            sys.exit(f"bench: `coalition worker` exited:\n{log.read_text()[-3000:]}")
        if time.monotonic() - last_said > 10:
            say(f"  {done:,} of {expected:,} delivered")
            last_said = time.monotonic()
        time.sleep(0.2)
    return False


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


# -- one run ---------------------------------------------------------------------------------


def one_run(size: Size, receiver: Receiver, workdir: Path, hang: bool) -> dict[str, Any]:
    label = "run 2 (one endpoint hangs)" if hang else "run 1"
    url = database_url(DB).replace("postgresql://", "postgresql+psycopg://", 1)
    plain = database_url(DB)
    recreate(DB)
    redis_process, redis_url = start_redis(workdir)
    env = worker_env(url, redis_url, receiver.ca_bundle)
    log = workdir / f"worker-{'hang' if hang else 'live'}.log"
    worker = None
    receiver.start()
    try:
        say(f"{label}: migrating {DB}")
        run([str(BIN / "coalition"), "db", "upgrade"], env=env)
        urls = [receiver.url(f"/hook/{n}") for n in range(ENDPOINTS)]
        if hang:
            urls[0] = receiver.url("/hang/0")
        merchants = build(plain, env, urls)
        live = merchants[1:] if hang else merchants
        with psycopg.connect(plain) as connection:
            say(f"{label}: {size.events:,} events in the outbox, {ENDPOINTS} endpoints")
            backlog = write_events(connection, merchants, 0, size.events)
            expected = sum(1 for merchant, _ in backlog.values() if merchant in live)
            connection.execute("ANALYZE")
            connection.commit()

            say(f"{label}: starting `coalition worker` (log: {log})")
            started = time.time()
            worker = start_worker(env, log)
            drained = wait_for(connection, live, expected, DRAIN_LIMIT_S, worker, log)
            drain_wall = time.time() - started
            if not drained:
                say(f"{label}: the backlog was not delivered in {DRAIN_LIMIT_S:.0f} s")

            rate = min(PURCHASES_PER_S, max(1.0, 0.5 * expected / drain_wall))
            drain_rate = None
            paced: dict[str, tuple[int, float]] = {}
            if drained:
                say(f"{label}: events at {rate:.0f}/s for {size.paced_seconds} s")
                total = int(rate * size.paced_seconds)
                begin = time.perf_counter()
                written = 0
                while written < total:
                    due = int((time.perf_counter() - begin) / size.paced_seconds * total) + 1
                    due = min(due, total)
                    if due > written:
                        paced.update(
                            write_events(
                                connection, merchants, size.events + written, due - written
                            )
                        )
                        written = due
                    time.sleep(TICK)
                paced_expected = expected + sum(1 for m, _ in paced.values() if m in live)
                if not wait_for(connection, live, paced_expected, 300, worker, log):
                    say(f"{label}: the paced events were not all delivered in 300 s")
            hung = connection.execute(
                "SELECT count(*) FROM webhook_attempts WHERE status_code IS NULL"
            ).fetchone()
            attempts_without_answer = int(hung[0]) if hung else 0
            connection.commit()
    finally:
        if worker is not None:
            stop_worker(worker)
        arrivals = receiver.stop()
        redis_process.terminate()
        redis_process.wait(timeout=20)

    first_arrival: dict[str, float] = {}
    duplicates = 0
    hang_requests = 0
    for webhook_id, path, moment in arrivals:
        if path.startswith("/hang"):
            hang_requests += 1
            continue
        if webhook_id in first_arrival:
            duplicates += 1
            first_arrival[webhook_id] = min(first_arrival[webhook_id], moment)
        else:
            first_arrival[webhook_id] = moment
    backlog_times = sorted(first_arrival[e] for e in backlog if e in first_arrival)
    if len(backlog_times) > 1:
        drain_rate = (len(backlog_times) - 1) / (backlog_times[-1] - backlog_times[0])
    latencies = [
        (first_arrival[e] - committed) * 1000
        for e, (merchant, committed) in paced.items()
        if e in first_arrival
    ]
    return {
        "endpoints_live": len(live),
        "endpoints_hanging": ENDPOINTS - len(live),
        "backlog_events": size.events,
        "backlog_deliveries_live": expected,
        "delivered_backlog": len(backlog_times),
        "drain_wall_s": round(drain_wall, 1),
        "deliveries_per_s": round(drain_rate, 1) if drain_rate else None,
        "per_endpoint_per_s": round(drain_rate / len(live), 2) if drain_rate else None,
        "paced_rate_per_s": round(rate, 1),
        "paced_events": len(paced),
        "paced_delivered_live": len(latencies),
        "latency_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "latency_p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
        "duplicates": duplicates,
        "hang_requests": hang_requests,
        "attempts_without_answer": attempts_without_answer,
    }


def side_by_side(first: dict[str, Any], second: dict[str, Any]) -> str:
    rows = [
        ("", "run 1: 100 live", "run 2: 99 live + 1 hanging"),
        ("backlog deliveries to live endpoints", "backlog_deliveries_live"),
        ("delivered (live)", "delivered_backlog"),
        ("drain, worker start to last (s)", "drain_wall_s"),
        ("deliveries/s (first to last arrival)", "deliveries_per_s"),
        ("deliveries/s per live endpoint", "per_endpoint_per_s"),
        ("paced events/s", "paced_rate_per_s"),
        ("latency event → arrival p50 (ms)", "latency_p50_ms"),
        ("latency event → arrival p99 (ms)", "latency_p99_ms"),
        ("duplicate arrivals", "duplicates"),
        ("requests to the hanging endpoint", "hang_requests"),
    ]
    table = [rows[0]] + [(name, str(first[key]), str(second[key])) for name, key in rows[1:]]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 events, short phases")
    parser.add_argument("--events", type=int, help="backlog events (default 20,000)")
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} not found (apt-get install -y wrk redis-server)")
    size = QUICK if args.quick else FULL
    if args.events:
        size = Size(args.events, size.paced_seconds, size.wrk_seconds)
    workdir = Path(tempfile.mkdtemp(prefix="coalition-bench-webhooks-"))
    receiver = Receiver(workdir)
    say(f"the receiver alone under wrk ({RECEIVER_PROCESSES} processes)")
    ceiling = receiver.ceiling(size.wrk_seconds)
    say(f"  {ceiling['requests_per_s']:,} requests/s")
    first = one_run(size, receiver, workdir, hang=False)
    second = one_run(size, receiver, workdir, hang=True)
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    figures = {
        "size": size.__dict__,
        "receiver_ceiling": ceiling,
        "timeout_s": float(TIMEOUT_SECONDS),
        "run_1": first,
        "run_2": second,
    }
    (HERE / "webhooks-results.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nreceiver alone: {ceiling['requests_per_s']:,} requests/s (wrk, 16 connections)")
    print(side_by_side(first, second))
    rate = first["deliveries_per_s"] or 0
    print(
        f"\npurchases (docs/benchmarks.md, issue 13): {PURCHASES_PER_S}/s single,"
        f" {BATCH_PURCHASES_PER_S}/s in batches; deliveries {rate:,.0f}/s:"
        f" {rate / PURCHASES_PER_S:.2f}x the single rate,"
        f" {rate / BATCH_PURCHASES_PER_S:.2f}x the batch rate"
    )
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
