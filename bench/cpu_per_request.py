"""CPU per request, for finding and checking the request path's costs (docs/benchmarks.md,
"Issue 11: the last levers"). Three steps, on a database of its own (`coalition_bench_cpu`,
built as `bench/run.py` builds `coalition_bench`: 100,000 members, 20 merchants):

    .venv/bin/python bench/cpu_per_request.py build
    .venv/bin/python bench/cpu_per_request.py profile [purchase read health batch] [--cprofile]
    .venv/bin/python bench/cpu_per_request.py ab --base /path/to/other/checkout [--reps 2]

`profile` makes the requests in this process through Flask's test client and prints the CPU
(`time.process_time`) each took, the best of five rounds; with `--cprofile`, the profile of one
more round (also kept in /tmp/coalition-<kind>.prof). `ab` serves this checkout and `--base`
(through PYTHONPATH) with `coalition serve`, runs wrk on each in turns and prints, per request,
the CPU the gunicorn workers and the PostgreSQL backends used (/proc), so that the two are
compared in the same minutes of a shared machine. A batch's figures are per purchase."""

from __future__ import annotations

import argparse
import base64
import cProfile
import json
import os
import pstats
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench  # noqa: E402  (bench/run.py: the harness's build and settings)

DB = os.environ.get("BENCH_CPU_DB", "coalition_bench_cpu")
URL = bench.database_url(DB).replace("postgresql://", "postgresql+psycopg://", 1)
DATA = Path(tempfile.gettempdir()) / f"{DB}.json"
COMMAND = str(bench.BIN / "coalition")


def build() -> None:
    bench.recreate(DB)
    bench.run([COMMAND, "db", "upgrade"], env=bench.app_env(URL))
    cards, credentials = bench.build(
        bench.database_url(DB), bench.Size(100_000, 20, 1, 1, (1, 1), 1, 1)
    )
    DATA.write_text(json.dumps({"cards": cards, "credentials": credentials}))
    print(f"{DB}: {len(cards):,} members, {len(credentials)} merchants ({DATA})")


def _data() -> dict[str, Any]:
    return dict(json.loads(DATA.read_text()))


def profile(kinds: list[str], with_cprofile: bool) -> None:
    from coalition import create_app

    app = create_app(bench.app_env(URL))
    data = _data()
    client = app.test_client()
    tokens = []
    for client_id, secret in data["credentials"][:5]:
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        answer = client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": bench.SCOPES},
            headers={"Authorization": f"Basic {basic}"},
        )
        tokens.append(answer.get_json()["access_token"])
    cards, tag, counter = data["cards"], f"p{time.time_ns()}", [0]

    def headers() -> dict[str, str]:
        return {"Authorization": "Bearer " + random.choice(tokens)}

    def line() -> dict[str, Any]:
        counter[0] += 1
        return {
            "member": random.choice(cards),
            "amount": 1250,
            "currency": "EUR",
            "external_id": f"{tag}-{counter[0]}",
        }

    def purchase() -> None:
        answer = client.post("/api/v1/purchases", json=line(), headers=headers())
        assert answer.status_code == 201, answer.data

    def read() -> None:
        answer = client.get("/api/v1/members/" + random.choice(cards), headers=headers())
        assert answer.status_code == 200, answer.data

    def health() -> None:
        assert client.get("/healthz").status_code == 200

    def batch() -> None:
        lines = [line() for _ in range(1000)]
        answer = client.post("/api/v1/purchases/batch", json=lines, headers=headers())
        assert answer.status_code == 200, answer.data

    made: dict[str, tuple[Callable[[], None], int, int]] = {
        "purchase": (purchase, 300, 1),
        "read": (read, 300, 1),
        "health": (health, 300, 1),
        "batch": (batch, 3, 1000),
    }
    for kind in kinds:
        make, count, per = made[kind]
        for _ in range(max(3, count // 10)):
            make()
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            for _ in range(count):
                make()
            best = min(best, time.process_time() - started)
        print(f"{kind}: {best / count / per * 1000:.3f} ms of CPU each")
        if with_cprofile:
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            for _ in range(count):
                make()
            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.dump_stats(f"/tmp/coalition-{kind}.prof")
            stats.sort_stats("cumulative").print_stats(40)


KINDS = {
    "purchase": ("purchase.lua", 16, "/"),
    "read": ("member.lua", 16, "/"),
    "healthz": (None, 16, "/healthz"),
    "batch": ("batch.lua", 4, "/"),
}


def _cpu_ms(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK") * 1000


def _workers(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(child) for child in found.split()]


def _backends() -> list[int]:
    with psycopg.connect(bench.ADMIN) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (DB,)
        ).fetchall()
    return [row[0] for row in rows]


def _purchases() -> int:
    with psycopg.connect(bench.database_url(DB)) as connection:
        row = connection.execute("SELECT count(*) FROM transactions").fetchone()
    return int(row[0]) if row else 0


def ab(base: str, reps: int, seconds: int, kinds: list[str]) -> None:
    data = _data()
    work = Path(tempfile.mkdtemp(prefix="coalition-cpu-"))
    (work / "cards.txt").write_text("\n".join(data["cards"]) + "\n")
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    for name, port, path in (("base", 8782, base), ("this", 8781, None)):
        env = bench.app_env(URL)
        if path:
            env["PYTHONPATH"] = path
        log = (work / f"serve-{name}.log").open("wb")
        command = [COMMAND, "serve", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--workers", str(bench.WORKERS)]
        servers[name] = (
            subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=path),
            port,
        )
    try:
        for _, port in servers.values():
            for _ in range(200):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                    break
                except OSError:
                    time.sleep(0.3)
        tokens = []
        for client_id, secret in data["credentials"]:
            basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
            asked = urllib.request.Request(
                f"http://127.0.0.1:{servers['this'][1]}/oauth/token",
                data=urllib.parse.urlencode(
                    {"grant_type": "client_credentials", "scope": bench.SCOPES}
                ).encode(),
                headers={"Authorization": f"Basic {basic}"},
            )
            with urllib.request.urlopen(asked) as answer:
                tokens.append(json.load(answer)["access_token"])
        (work / "tokens.txt").write_text("\n".join(tokens) + "\n")

        def one(name: str, kind: str, length: int, tag: str) -> dict[str, Any]:
            server, port = servers[name]
            script, connections, path = KINDS[kind]
            workers, backends = _workers(server.pid), _backends()
            workers_before, backends_before = _cpu_ms(workers), _cpu_ms(backends)
            purchases_before = _purchases()
            command = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{length}s"]
            command += ["--timeout", "30s"]
            if script:
                command += ["-s", str(HERE / "wrk" / script)]
            command.append(f"http://127.0.0.1:{port}{path}")
            if script:
                command += ["--", str(work), tag]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            time.sleep(3 if kind == "batch" else 0.5)  # a batch still running when wrk stops
            backends = sorted(set(backends) | set(_backends()))
            answered = re.search(r"(\d+) requests in", out)
            failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            requests = int(answered.group(1)) if answered else 0
            units = max(1, _purchases() - purchases_before if kind == "batch" else requests)
            return {
                "server": name,
                "kind": kind,
                "per_s": round(units / length, 1),
                "failed": int(failed.group(1)) if failed else 0,
                "worker_ms": round((_cpu_ms(workers) - workers_before) / units, 3),
                "postgres_ms": round((_cpu_ms(backends) - backends_before) / units, 3),
            }

        stamp = time.time_ns()
        for name in servers:  # pools filled, tokens cached, statements prepared
            for kind in ("purchase", "read", "batch"):
                one(name, kind, 3, f"w{stamp}{name}")
        with psycopg.connect(bench.database_url(DB), autocommit=True) as connection:
            connection.execute("ANALYZE")
        for rep in range(reps):
            for kind in kinds:
                for name in ("base", "this") if rep % 2 == 0 else ("this", "base"):
                    print(json.dumps(one(name, kind, seconds, f"m{stamp}{rep}{name}")), flush=True)
    finally:
        for server, _ in servers.values():
            server.terminate()
        for server, _ in servers.values():
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    steps.add_parser("build")
    profiling = steps.add_parser("profile")
    profiling.add_argument("kinds", nargs="*", default=["purchase", "read", "health", "batch"])
    profiling.add_argument("--cprofile", action="store_true")
    comparing = steps.add_parser("ab")
    comparing.add_argument("--base", required=True, help="a checkout of the code to compare with")
    comparing.add_argument("--reps", type=int, default=2)
    comparing.add_argument("--seconds", type=int, default=10)
    comparing.add_argument("--kinds", default="purchase,read,healthz,batch")
    arguments = parser.parse_args()
    if arguments.step == "build":
        build()
    elif arguments.step == "profile":
        profile(arguments.kinds, arguments.cprofile)
    else:
        ab(arguments.base, arguments.reps, arguments.seconds, arguments.kinds.split(","))


if __name__ == "__main__":
    main()
