"""Webhook ingest: cloudops against the minimal correct receiver (bench/anchors/webhook_receiver.py),
both on SQLite, one uvicorn process each (httptools, uvloop), in interleaved rounds.

    .venv/bin/python bench/webhook_ingest.py                  # 5 rounds of 6 s, 8 client threads
    .venv/bin/python bench/webhook_ingest.py --rounds 3 --seconds 4 --threads 8

Each client thread delivers signed trainer progress events for a job of its own, as fast as
the server answers; a round counts the deliveries answered "received" in its time. Prints each
round, the medians, the ratio (goal >= 0.6) and the load average.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.webhooks import deliver, server_env, setup  # noqa: E402
from tests.server.live import free_port, running  # noqa: E402


def create(db: str, secrets: dict[str, str]) -> None:
    """The anchor's database: the replay table, and one job row per (job id, secret)."""
    conn = sqlite3.connect(db)
    conn.executescript(
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE replay (webhook_id TEXT PRIMARY KEY);"
        "CREATE TABLE job (id TEXT PRIMARY KEY, secret TEXT NOT NULL, progress TEXT);"
    )
    conn.executemany("INSERT INTO job (id, secret) VALUES (?, ?)", secrets.items())
    conn.commit()
    conn.close()


def anchor_argv(port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "uvicorn", "bench.anchors.webhook_receiver:application"),
        *("--host", "127.0.0.1", "--port", str(port), "--http", "httptools", "--loop", "uvloop"),
        *("--no-access-log", "--lifespan", "off", "--log-level", "warning"),
    ]


def round_of(base: str, secrets: dict[str, str], seconds: float, first_step: int) -> int:
    """Deliveries answered in `seconds` by one thread per job."""
    counts: list[int] = []
    stop = time.perf_counter() + seconds

    def work(job: str) -> None:
        done, step = 0, first_step
        with httpx.Client(timeout=30) as client:
            while time.perf_counter() < stop:
                deliver(client, base, secrets[job], job, step)
                done, step = done + 1, step + 1
        counts.append(done)

    threads = [threading.Thread(target=work, args=(job,)) for job in secrets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="bench-ingest-")
    env = server_env(home)
    state = setup(env, jobs=args.threads)
    anchor_db = str(Path(home) / "anchor.db")
    create(anchor_db, state["secrets"])
    ours_port, anchor_port = free_port(), free_port()
    with ExitStack() as stack:
        ours = stack.enter_context(
            running(
                [sys.executable, "manage.py", "serve", "--port", str(ours_port)],
                {**env, "PORT": str(ours_port)},
                ours_port,
                Path(home) / "ours.log",
            )
        )
        anchor_env = {k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"} | {"ANCHOR_DB": anchor_db}
        anchor = stack.enter_context(
            running(anchor_argv(anchor_port), anchor_env, anchor_port, Path(home) / "anchor.log")
        )
        rates: dict[str, list[float]] = {"cloudops": [], "anchor": []}
        step = 1
        for number in range(1, args.rounds + 1):
            for name, base in (("cloudops", ours), ("anchor", anchor)):
                done = round_of(base, state["secrets"], args.seconds, step)
                step += done + 1
                rates[name].append(done / args.seconds)
            print(f"round {number}: cloudops {rates['cloudops'][-1]:.0f}/s  anchor {rates['anchor'][-1]:.0f}/s")
    ours_median, anchor_median = statistics.median(rates["cloudops"]), statistics.median(rates["anchor"])
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"webhooks, SQLite, {args.threads} threads: cloudops {ours_median:.0f}/s, minimal receiver "
        f"{anchor_median:.0f}/s, ratio {ours_median / anchor_median:.2f}x (goal >= 0.6)  load {load}"
    )


if __name__ == "__main__":
    main()
