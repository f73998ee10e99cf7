#!/usr/bin/env python
"""Rate limiting cost, in one run:

1. checks per second of the limiter on each state backend (SQLite file, PostgreSQL,
   MariaDB, Redis, memory), one thread, over 1,000 keys, next to a Redis PING round trip;
2. the request rate of a cheap endpoint (`GET /api/cloud/jobs` without credentials: 401
   from DRF, no database work) on `manage.py serve`, with rate limiting off
   (RATE_LIMIT_CALLS=0) and on (database backend on SQLite, then Redis), the same server
   code and the same load each time. Load: 8 client threads with keep-alive connections,
   each request from one of 256 client addresses (X-Forwarded-For from loopback, a trusted
   proxy), with a limit high enough that nothing is refused: the cost of counting, not of 429s.

    .venv/bin/python bench/ratelimit.py                    # everything reachable
    .venv/bin/python bench/ratelimit.py --checks 5000 --seconds 5

PostgreSQL and MariaDB are used through STATE_BACKEND_URL (a `cloudops_bench_ratelimit`
database, created and dropped here); unreachable servers are skipped. Figures: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.s3_upload import cpu_seconds  # noqa: E402
from tests.server.live import free_port, running_process  # noqa: E402

BENCH_DB = "cloudops_bench_ratelimit"
SERVERS = {
    "postgres": f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}",
    "mariadb": f"mysql://root@127.0.0.1:3306/{BENCH_DB}",
    "redis": "redis://127.0.0.1:6379/14",
}

CHECKS_CODE = """
import json, sys, time
import django
django.setup()
from django.core.management import call_command
from django.conf import settings
from cloudops.ratelimit.limiter import RateLimiter
from cloudops.ratelimit.backends import state_backend
if settings.STATE_BACKEND == "database":
    call_command("migrate", database=settings.RATE_LIMIT_DATABASE, verbosity=0)
n = int(sys.argv[1])
limiter = RateLimiter(10**9, 60, "bench")
for i in range(200):  # warm up connections and the script cache
    limiter.hit_sync(f"k{i % 1000}")
started = time.perf_counter()
for i in range(n):
    limiter.hit_sync(f"k{i % 1000}")
checks = n / (time.perf_counter() - started)
result = {"checks_per_s": checks, "backend": state_backend().ping()}
if settings.STATE_BACKEND == "redis":
    client = state_backend().client
    started = time.perf_counter()
    for _ in range(n):
        client.ping()
    result["ping_per_s"] = n / (time.perf_counter() - started)
    client.flushdb()
print(json.dumps(result))
"""


def base_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "STATE_", "RATE_"))}
    env.update(
        SIMPLETUNER_HOME=str(home),
        DJANGO_SETTINGS_MODULE="cloudops.settings",
        SIMPLETUNER_LOG_LEVEL="WARNING",
        SIMPLETUNER_BACKGROUND_SYNC="false",
        **extra,
    )
    return env


def create_database(kind: str) -> None:
    if kind == "postgres":
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
            conn.execute(f"CREATE DATABASE {BENCH_DB}")
    elif kind == "mariadb":
        import pymysql

        with pymysql.connect(host="127.0.0.1", port=3306, user="root") as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
            cursor.execute(f"CREATE DATABASE {BENCH_DB}")


def drop_database(kind: str) -> None:
    if kind == "postgres":
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
    elif kind == "mariadb":
        import pymysql

        with pymysql.connect(host="127.0.0.1", port=3306, user="root") as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")


def backend_env(kind: str) -> dict[str, str]:
    if kind == "sqlite":
        return {"STATE_BACKEND": "database"}
    if kind == "memory":
        return {"STATE_BACKEND": "memory"}
    if kind == "redis":
        return {"STATE_BACKEND": "redis", "STATE_BACKEND_URL": SERVERS["redis"]}
    return {"STATE_BACKEND": "database", "STATE_BACKEND_URL": SERVERS[kind]}


def measure_checks(kind: str, checks: int, work: Path) -> dict[str, object] | None:
    try:
        create_database(kind)
    except Exception as exc:  # an unreachable server is skipped, not fatal
        print(f"  {kind}: skipped ({type(exc).__name__}: {exc})")
        return None
    try:
        home = work / f"home-{kind}"
        env = base_env(home, **backend_env(kind))
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        done = subprocess.run(
            [sys.executable, "-c", CHECKS_CODE, str(checks)], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            print(f"  {kind}: failed\n{done.stderr[-2000:]}")
            return None
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        drop_database(kind)


KEY_CODE = """
from django.contrib.auth import get_user_model
from cloudops.apikeys import api_key_create
owner = get_user_model().objects.create_user("bench")
print(api_key_create(owner=owner, name="bench")[1])
"""


def load(base: str, seconds: float, api_key: str | None, threads: int = 8) -> tuple[float, int]:
    """(requests per second, requests) of GET /api/cloud/jobs from `threads` keep-alive clients."""
    counts = [0] * threads
    stop_at = time.monotonic() + seconds
    auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    expected = 200 if api_key else 401

    def worker(n: int) -> None:
        with httpx.Client(base_url=base, headers=auth) as client:
            i = 0
            while time.monotonic() < stop_at:
                ip = f"198.51.100.{(n * 37 + i) % 256}"
                response = client.get("/api/cloud/jobs", headers={"X-Forwarded-For": ip})
                assert response.status_code == expected, response.status_code
                counts[n] += 1
                i += 1

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    started = time.monotonic()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / (time.monotonic() - started), sum(counts)


Figures = tuple[float, float]  # (requests per second, server CPU milliseconds per request)


def measured(base: str, seconds: float, api_key: str | None, pid: int) -> Figures:
    cpu = cpu_seconds(pid)
    rate, count = load(base, seconds, api_key)
    return rate, (cpu_seconds(pid) - cpu) * 1000 / count


def measure_requests(label: str, extra: dict[str, str], seconds: float, work: Path) -> tuple[Figures, Figures]:
    """(anonymous 401, authenticated 200) figures on one server."""
    home = work / f"serve-{label}"
    env = base_env(home, **extra)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    made = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", KEY_CODE],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    api_key = made.stdout.split()[-1]
    port = free_port()
    argv = [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with running_process(argv, env, port, work / f"serve-{label}.log") as (base, proc):
        load(base, 1.0, None)  # warm up
        return measured(base, seconds, None, proc.pid), measured(base, seconds, api_key, proc.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=20000, help="checks per backend")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of load per server run")
    parser.add_argument("--rounds", type=int, default=3, help="server runs per configuration (best is kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ratelimit-") as tmp:
        work = Path(tmp)
        print(f"Limiter checks, one thread, {args.checks} checks over 1,000 keys:")
        ping = None
        for kind in ("sqlite", "postgres", "mariadb", "redis", "memory"):
            result = measure_checks(kind, args.checks, work)
            if result is None:
                continue
            print(f"  {kind:<9} {result['checks_per_s']:>10,.0f} checks/s   ({result['backend']})")
            if "ping_per_s" in result:
                ping = result["ping_per_s"]
                ratio = ping / result["checks_per_s"]
                print(f"  {'redis PING':<9} {ping:>10,.0f} round trips/s  -> a check costs {ratio:.2f}x a PING")
        print(f"\nGET /api/cloud/jobs, manage.py serve (uvicorn), 8 client threads, {args.seconds:g} s each,")
        print(f"best of {args.rounds} interleaved rounds. Server CPU per request is the cost that does not move")
        print("with the machine's load; req/s does.")
        print(f"{'':<32}{'anonymous (401, no DB work)':<34}with an API key (200: key lookup, job list)")
        configs = [("off", {"RATE_LIMIT_CALLS": "0"}), ("on, database (SQLite)", {"RATE_LIMIT_CALLS": str(10**9)})]
        if ping is not None:
            redis_env = {"RATE_LIMIT_CALLS": str(10**9), "STATE_BACKEND": "redis", "REDIS_URL": SERVERS["redis"]}
            configs.append(("on, redis", redis_env))
        results: dict[str, list[tuple[Figures, Figures]]] = {label: [] for label, _ in configs}
        loads = [os.getloadavg()[0]]
        for n in range(args.rounds):  # interleaved, so a burst of outside load hits every config alike
            for label, extra in configs:
                results[label].append(
                    measure_requests(f"{n}-{len(results[label])}-{label[:6]}", extra, args.seconds, work)
                )
            loads.append(os.getloadavg()[0])
        best = {
            label: (best_of([r[0] for r in runs]), best_of([r[1] for r in runs])) for label, runs in results.items()
        }
        off = best["off"]
        for label, _ in configs:
            figures = best[label]
            baseline = None if label == "off" else off
            print(
                f"  {'rate limiting ' + label:<30}{row(figures[0], baseline and baseline[0]):<34}{row(figures[1], baseline and baseline[1])}"
            )
        print("\nCPU per request against the same round's 'off' server (median of the rounds, then each round):")
        for label, _ in configs[1:]:
            cells = [round_ratios(results["off"], results[label], which) for which in (0, 1)]
            print(f"  {'rate limiting ' + label:<30}{cells[0]:<34}{cells[1]}")
        print(f"\nload average (1 min) during the server rounds: {min(loads):.1f} to {max(loads):.1f}")


def round_ratios(off: list[tuple[Figures, Figures]], on: list[tuple[Figures, Figures]], which: int) -> str:
    ratios = [b[which][1] / a[which][1] for a, b in zip(off, on, strict=True)]
    return f"{(statistics.median(ratios) - 1) * 100:+.0f}% ({', '.join(f'{(r - 1) * 100:+.0f}' for r in ratios)})"


def best_of(runs: list[Figures]) -> Figures:
    return max(rate for rate, _ in runs), min(cpu for _, cpu in runs)


def row(figures: Figures, baseline: Figures | None) -> str:
    rate, cpu = figures
    text = f"{rate:>6,.0f} req/s {cpu:>5.2f} ms CPU"
    return text + (f" ({(cpu / baseline[1] - 1) * 100:+.0f}%)" if baseline else "")


if __name__ == "__main__":
    main()
