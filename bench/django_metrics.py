"""What Django's own metrics (the `django` category, cloudops/metrics/django_process.py) cost
a request: three servers loaded in interleaved rounds, as bench/middleware.py measures.

    .venv/bin/python bench/django_metrics.py                     # 3 rounds of 3 s per server
    .venv/bin/python bench/django_metrics.py --rounds 5 --seconds 4

- "without": MIDDLEWARE without the two django metrics middlewares, category off: the anchor;
- "off": the whole MIDDLEWARE, category not exported (the default): the cost of the checks;
- "on": the whole MIDDLEWARE, category exported: django-prometheus' request metrics and the
  query counter at work.

Each server has its own home (SQLite), since the category is instance-wide configuration.
Server CPU per request (from /proc), median of the rounds, same two requests as
bench/middleware.py (an anonymous 401 without database work; /api/users/me with an API key).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_reads import ours_key  # noqa: E402
from bench.middleware import cpu_ms_per_request, load  # noqa: E402
from bench.webhooks import server_env  # noqa: E402
from tests.server.live import free_port, running_process  # noqa: E402

DJANGO_METRICS = (
    "cloudops.metrics.django_process.DjangoMetricsBeforeMiddleware,"
    "cloudops.metrics.django_process.DjangoMetricsAfterMiddleware"
)
EXPORT_DJANGO = (
    "import django; django.setup(); from cloudops.metrics.services import metrics_config_update; "
    "metrics_config_update(prometheus_enabled=True, prometheus_categories=['django'])"
)
CONFIGS = {"without": (DJANGO_METRICS, False), "off": ("", False), "on": ("", True)}


def start(stack: ExitStack, name: str, without: str, exported: bool) -> tuple[str, int, str]:
    """A server in a fresh home; returns its base URL, pid and API key."""
    home = Path(tempfile.mkdtemp(prefix=f"bench-django-metrics-{name}-"))
    env = server_env(str(home)) | {
        "DJANGO_SETTINGS_MODULE": "bench.middleware_settings",
        "STATE_BACKEND": "database",
        "RATE_LIMIT_CALLS": "1000000",  # counted, never refused
    }
    key = ours_key(env)
    if exported:
        subprocess.run([sys.executable, "-c", EXPORT_DJANGO], cwd=ROOT, env=env, check=True)
    port = free_port()
    argv = [sys.executable, "manage.py", "serve", "--port", str(port)]
    server_env_ = env | {"PORT": str(port), "BENCH_WITHOUT_MIDDLEWARE": without}
    base, proc = stack.enter_context(running_process(argv, server_env_, port, home / "serve.log"))
    # A scrape makes the process follow the configuration at once (its metrics thread would
    # within SIMPLETUNER_METRICS_FLUSH_SECONDS).
    httpx.get(base + "/api/cloud/metrics/prometheus")
    load(base, 0.5, {}, 401)  # warm up
    return base, proc.pid, key


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    figures: dict[tuple[str, str], list[float]] = {}
    with ExitStack() as stack:
        servers = {name: start(stack, name, without, on) for name, (without, on) in CONFIGS.items()}
        for number in range(1, args.rounds + 1):
            for name, (base, pid, key) in servers.items():
                cases = {"anonymous 401": ({}, 401), "users/me with a key": ({"Authorization": f"Bearer {key}"}, 200)}
                for case, (headers, expected) in cases.items():
                    figure = cpu_ms_per_request(base, pid, args.seconds, headers, expected)
                    figures.setdefault((name, case), []).append(figure)
            print(f"round {number} of {args.rounds} done", flush=True)
    medians = {key: statistics.median(values) for key, values in figures.items()}
    print(f"\nserver CPU ms per request (median), SQLite, rate limiting on; load {os.getloadavg()[0]:.2f}")
    for case in ("anonymous 401", "users/me with a key"):
        anchor = medians[("without", case)]
        cells = [f"without {anchor:.3f}"]
        for name in ("off", "on"):
            value = medians[(name, case)]
            cells.append(f"{name} {value:.3f} ({(value - anchor) * 1000:+.0f} us, {(value - anchor) / anchor:+.1%})")
        print(f"{case:22}" + "   ".join(cells))


if __name__ == "__main__":
    main()
