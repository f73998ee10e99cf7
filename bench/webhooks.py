"""Webhook throughput and webhook-to-stream latency against real server processes.

    .venv/bin/python bench/webhooks.py                        # one server, SQLite, in-memory layer
    .venv/bin/python bench/webhooks.py --redis redis://127.0.0.1:6379/15 --servers 2
    .venv/bin/python bench/webhooks.py --database-url postgres://postgres@127.0.0.1:5432/bench

Sets up a fresh SIMPLETUNER_HOME (migrate, a user, an API key, local jobs), starts the server(s),
opens an event stream on the last server, then POSTs signed trainer progress events to the
first server: sequentially (latency) and from several threads (throughput). Prints the
response latency, deliveries per second, and the time from sending a webhook to its event
arriving on the stream (across processes when --servers 2).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.server.live import free_port, running  # noqa: E402
from tests.webhooks.signing import signed_headers  # noqa: E402

SETUP = """
import django, json
django.setup()
from django.contrib.auth import get_user_model
from cloudops.apikeys import api_key_create
from providers.credentials import local_webhook_secret
from providers.models import Job
user = get_user_model().objects.create_user("bench", password="x" * 20)
_, key = api_key_create(owner=user, name="bench")
jobs = [Job.objects.create(owner=user, provider="local", status="running").pk for _ in range({jobs})]
print(json.dumps({{"key": key, "secrets": {{job: local_webhook_secret(job) for job in jobs}}, "jobs": jobs}}))
"""


def clean_env() -> dict[str, str]:
    """This process's environment without the variables that would point a bench at real state."""
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}


def server_env(home: str) -> dict[str, str]:
    """A cloudops server's environment for a bench: a fresh home (SQLite), no background sync,
    warnings only (the benches that compare against an anchor use it too)."""
    return clean_env() | {
        "SIMPLETUNER_HOME": home,
        "SIMPLETUNER_BACKGROUND_SYNC": "false",
        "SIMPLETUNER_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "cloudops.settings",
    }


def setup(env: dict[str, str], jobs: int) -> dict:
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    out = subprocess.run(
        [python, "-c", SETUP.format(jobs=jobs)], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


class StreamWatcher(threading.Thread):
    """Reads the stream and records when each event (by the step it carries) arrived."""

    def __init__(self, base: str, key: str) -> None:
        super().__init__(daemon=True)
        self.base, self.key = base, key
        self.arrived: dict[tuple[str, int], float] = {}
        self.ready = threading.Event()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        try:
            with httpx.stream("GET", self.base + "/api/events/stream", headers=headers, timeout=None) as response:
                self.ready.set()
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        self.record(json.loads(line[6:]))
        except httpx.HTTPError:
            pass  # the server stopped at the end of the run

    def record(self, data: dict) -> None:
        step = (data.get("progress") or {}).get("current")
        if step is not None:
            self.arrived[(data["job_id"], step)] = time.perf_counter()


def deliver(client: httpx.Client, base: str, secret: str, job: str, step: int) -> tuple[float, float]:
    body = json.dumps({"type": "training.progress", "job_id": job, "data": {"step": step, "total_steps": 10**6}})
    headers = {"Content-Type": "application/json", **signed_headers(secret, body.encode())}
    started = time.perf_counter()
    response = client.post(f"{base}/api/webhooks/local", content=body, headers=headers)
    assert response.status_code == 200 and response.json()["status"] == "received", response.text
    return started, time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, default=1, choices=(1, 2))
    parser.add_argument("--redis", default="")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--deliveries", type=int, default=300)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    if args.servers == 2 and not args.redis:
        parser.error("two servers need --redis (the channel layer between them)")
    home = tempfile.mkdtemp(prefix="bench-webhooks-")
    env = server_env(home)
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    if args.redis:
        env["REDIS_URL"] = args.redis
    state = setup(env, jobs=args.threads)
    with ExitStack() as stack:
        bases = []
        for index in range(args.servers):
            port = free_port()
            argv = [sys.executable, "manage.py", "serve", "--port", str(port)]
            log = Path(home) / f"server-{index}.log"
            bases.append(stack.enter_context(running(argv, {**env, "PORT": str(port)}, port, log)))
        watcher = StreamWatcher(bases[-1], state["key"])
        watcher.start()
        watcher.ready.wait(10)
        time.sleep(0.5)
        client = stack.enter_context(httpx.Client(timeout=30))
        job = state["jobs"][0]
        sent: dict[tuple[str, int], float] = {}
        latencies = []
        for step in range(1, args.deliveries + 1):
            started, took = deliver(client, bases[0], state["secrets"][job], job, step)
            sent[(job, step)] = started
            latencies.append(took)
        time.sleep(1)
        to_stream = [watcher.arrived[k] - sent[k] for k in sent if k in watcher.arrived]

        def burst(job_id: str) -> None:
            with httpx.Client(timeout=30) as own:
                for step in range(1, args.deliveries // args.threads + 1):
                    deliver(own, bases[0], state["secrets"][job_id], job_id, step)

        started = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(burst, state["jobs"]))
        elapsed = time.perf_counter() - started
        total = (args.deliveries // args.threads) * args.threads
    layer = "redis" if args.redis else "in-memory"
    database = args.database_url.split(":", 1)[0] if args.database_url else "sqlite"
    print(f"servers={args.servers} database={database} layer={layer} deliveries={args.deliveries}")
    print(
        f"sequential webhook response: p50 {pct(latencies, 0.5):.1f} ms  p95 {pct(latencies, 0.95):.1f} ms  "
        f"({len(latencies) / sum(latencies):.0f}/s)"
    )
    print(f"{args.threads} threads: {total} deliveries in {elapsed:.2f} s = {total / elapsed:.0f}/s")
    print(
        f"webhook sent -> event on the stream{' (other process)' if args.servers == 2 else ''}: "
        f"p50 {pct(to_stream, 0.5):.1f} ms  p95 {pct(to_stream, 0.95):.1f} ms  "
        f"({len(to_stream)}/{len(sent)} events arrived)"
    )


if __name__ == "__main__":
    main()
