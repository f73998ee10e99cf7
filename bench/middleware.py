"""What each middleware costs a request: one server with the whole MIDDLEWARE and one without
each middleware in turn, all on SQLite with rate limiting on (database backend), loaded in
interleaved rounds; prints the server CPU time per request of each and the difference.

    .venv/bin/python bench/middleware.py                         # 3 rounds of 3 s per server
    .venv/bin/python bench/middleware.py --rounds 5 --seconds 4

Two requests: `GET /api/cloud/jobs` without credentials (401 from DRF, no database work: the
cheapest request, where middleware weighs most) and `GET /api/users/me` with an API key. Each
request comes from one of 256 client addresses (X-Forwarded-For from loopback, a trusted
proxy), so the rate limiter counts them as it counts clients behind a tunnel (loopback itself
is never limited). Server CPU per request (from /proc) is the figure that moves least with
the machine's load; the median of the rounds is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_reads import ours_key  # noqa: E402
from bench.s3_upload import cpu_seconds  # noqa: E402
from bench.webhooks import server_env  # noqa: E402
from tests.server.live import free_port, running_process  # noqa: E402


def middleware_list(env: dict[str, str]) -> list[str]:
    code = "import django; django.setup(); from django.conf import settings; print('\\n'.join(settings.MIDDLEWARE))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return out.stdout.split()


# Django's authentication and messages middleware need sessions: the three go together.
SESSION_STACK = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
)


def toggles(middleware: list[str]) -> list[str]:
    """What to leave out in turn: each middleware, the session middleware with its dependants."""
    return [",".join(SESSION_STACK) if name == SESSION_STACK[0] else name for name in middleware]


def load(base: str, seconds: float, headers: dict[str, str], expected: int, threads: int = 8) -> int:
    """Requests answered `expected` by `threads` keep-alive clients in `seconds`."""
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def work(n: int) -> None:
        path = "/api/users/me" if expected == 200 else "/api/cloud/jobs"
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            i = 0
            while time.perf_counter() < stop:
                ip = f"198.51.100.{(n * 37 + i) % 256}"
                response = client.get(path, headers={"X-Forwarded-For": ip})
                assert response.status_code == expected, (response.status_code, response.text[:200])
                counts[n] += 1
                i += 1

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts)


def cpu_ms_per_request(base: str, pid: int, seconds: float, headers: dict[str, str], expected: int) -> float:
    before = cpu_seconds(pid)
    count = load(base, seconds, headers, expected)
    return (cpu_seconds(pid) - before) * 1000 / count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-middleware-"))
    env = server_env(str(home)) | {
        "DJANGO_SETTINGS_MODULE": "bench.middleware_settings",
        "STATE_BACKEND": "database",
        "RATE_LIMIT_CALLS": "1000000",  # counted, never refused
    }
    key = ours_key(env)
    configs = ["", *toggles(middleware_list(env))]  # "": the whole stack
    cases = {"anonymous 401": ({}, 401), "users/me with a key": ({"Authorization": f"Bearer {key}"}, 200)}
    figures: dict[tuple[str, str], list[float]] = {(c, case): [] for c in configs for case in cases}
    with ExitStack() as stack:
        servers = {}
        for config in configs:
            port = free_port()
            argv = [sys.executable, "manage.py", "serve", "--port", str(port)]
            server_env_ = env | {"PORT": str(port), "BENCH_WITHOUT_MIDDLEWARE": config}
            log = home / f"serve-{config.split(',')[0].rsplit('.', 1)[-1] or 'all'}.log"
            servers[config] = stack.enter_context(running_process(argv, server_env_, port, log))
            load(servers[config][0], 0.5, {}, 401)  # warm up
        for number in range(1, args.rounds + 1):
            for config in configs:
                base, proc = servers[config]
                for case, (headers, expected) in cases.items():
                    figures[(config, case)].append(cpu_ms_per_request(base, proc.pid, args.seconds, headers, expected))
            print(f"round {number} of {args.rounds} done", flush=True)
    report(configs, cases, figures)


def report(configs: list[str], cases: dict, figures: dict[tuple[str, str], list[float]]) -> None:
    medians = {key: statistics.median(values) for key, values in figures.items()}
    print(f"\nserver CPU ms per request (median), SQLite, rate limiting on; load {os.getloadavg()[0]:.2f}")
    print(f"{'configuration':58}" + "".join(f"{case:>34}" for case in cases))
    for config in configs:
        cells = []
        for case in cases:
            value, whole = medians[(config, case)], medians[("", case)]
            cells.append(
                f"{value:7.3f}"
                + ("" if not config else f"  cost {whole - value:+.3f} ({(whole - value) / whole:+.0%})")
            )
        short = "+".join(name.rsplit(".", 1)[-1] for name in config.split(","))
        label = "whole MIDDLEWARE" if not config else f"without {short}"
        print(f"{label:58}" + "".join(f"{cell:>34}" for cell in cells))


if __name__ == "__main__":
    main()
