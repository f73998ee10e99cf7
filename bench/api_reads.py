"""Authenticated API reads: cloudops's `GET /api/users/me` with an API key against the DRF anchor
(bench/anchors/drf_token_app.py: Django's default middleware, TokenAuthentication, an APIView),
both on SQLite, one uvicorn process each, in interleaved rounds; and cloudops's job list.

    .venv/bin/python bench/api_reads.py                        # 5 rounds of 5 s, 8 client threads
    .venv/bin/python bench/api_reads.py --rounds 3 --seconds 3

Prints each round, the medians, the ratio for /api/users/me (goal >= 0.85) and the load average.
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
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.webhooks import clean_env, server_env  # noqa: E402
from tests.server.live import free_port, running  # noqa: E402

SETUP = """
import django, json
django.setup()
from django.contrib.auth import get_user_model
from cloudops.apikeys import api_key_create
from providers.models import Job
user = get_user_model().objects.create_user("bench", password="x" * 20)
_, key = api_key_create(owner=user, name="bench")
for status in ["running", "completed", "failed", "queued"] * 5:
    Job.objects.create(owner=user, provider="local", status=status)
print(json.dumps({"key": key}))
"""


def ours_key(env: dict[str, str]) -> str:
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    out = subprocess.run([sys.executable, "-c", SETUP], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["key"]


def anchor_token(env: dict[str, str]) -> str:
    argv = [sys.executable, "-m", "bench.anchors.drf_token_app", "setup"]
    out = subprocess.run(argv, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def anchor_argv(port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "uvicorn", "bench.anchors.drf_token_app:application"),
        *("--host", "127.0.0.1", "--port", str(port), "--http", "httptools", "--loop", "uvloop"),
        *("--no-access-log", "--lifespan", "off", "--log-level", "warning"),
    ]


def round_of(url: str, headers: dict[str, str], threads: int, seconds: float) -> float:
    """Requests per second answered 200 by `threads` clients in `seconds`."""
    counts: list[int] = []
    stop = time.perf_counter() + seconds

    def work() -> None:
        done = 0
        with httpx.Client(timeout=30, headers=headers) as client:
            while time.perf_counter() < stop:
                response = client.get(url)
                assert response.status_code == 200, response.text
                done += 1
        counts.append(done)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-reads-"))
    ours_env = server_env(str(home))
    anchor_env = clean_env() | {"ANCHOR_DB": str(home / "anchor.db")}
    key, token = ours_key(ours_env), anchor_token(anchor_env)
    ours_port, anchor_port = free_port(), free_port()
    with ExitStack() as stack:
        serve = [sys.executable, "manage.py", "serve", "--port", str(ours_port)]
        ours = stack.enter_context(running(serve, ours_env | {"PORT": str(ours_port)}, ours_port, home / "ours.log"))
        anchor = stack.enter_context(running(anchor_argv(anchor_port), anchor_env, anchor_port, home / "anchor.log"))
        cases = {
            "cloudops /api/users/me": (ours + "/api/users/me", {"Authorization": f"Bearer {key}"}),
            "anchor /api/users/me": (anchor + "/api/users/me", {"Authorization": f"Token {token}"}),
            "cloudops /api/cloud/jobs": (ours + "/api/cloud/jobs", {"Authorization": f"Bearer {key}"}),
        }
        rates: dict[str, list[float]] = {name: [] for name in cases}
        for number in range(1, args.rounds + 1):
            for name, (url, headers) in cases.items():
                rates[name].append(round_of(url, headers, args.threads, args.seconds))
            print(f"round {number}: " + "  ".join(f"{name} {rates[name][-1]:.0f}/s" for name in cases))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    ratio = medians["cloudops /api/users/me"] / medians["anchor /api/users/me"]
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        "  ".join(f"{name} {value:.0f}/s" for name, value in medians.items())
        + f"  users/me ratio {ratio:.2f}x (goal >= 0.85)  load {load}"
    )


if __name__ == "__main__":
    main()
