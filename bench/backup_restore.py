#!/usr/bin/env python
"""Backup and restore of the SQLite job database at a few sizes: seed N jobs (about 1 KB of
logs each), then measure

- `JobStore().backup()` (plain and gzipped): time, MB/s, gzip ratio,
- a writer thread committing one job per transaction during a plain backup: its commits
  per second and its slowest commit, against the same writer alone (the backup is online:
  WAL lets the writer commit while the backup reads),
- `JobStore().restore()` of the plain backup: time (copy, validation, safety copy, swap).

    .venv/bin/python bench/backup_restore.py                    # 10k and 100k jobs
    .venv/bin/python bench/backup_restore.py --sizes 1000 5000  # quicker

Each size uses a fresh SQLite database in a temporary SIMPLETUNER_HOME. Figures are recorded
in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.django_setup import setup_django  # noqa: E402


def seed(n: int) -> int:
    from django.contrib.auth import get_user_model

    from providers.models import Job

    owner = get_user_model().objects.create_user("bench")
    for start in range(0, n, 5000):
        Job.objects.bulk_create(
            [
                Job(owner=owner, provider="local", name=f"job-{i}", logs="x" * 1000)
                for i in range(start, min(n, start + 5000))
            ]
        )
    return owner.pk


class Writer(threading.Thread):
    """Commits one job per transaction until stopped; records each commit's latency."""

    def __init__(self, owner_id: int) -> None:
        super().__init__(daemon=True)
        self.owner_id, self.stop, self.latencies = owner_id, threading.Event(), []

    def run(self) -> None:
        from django.db import connection

        from providers.models import Job

        while not self.stop.is_set():
            started = time.perf_counter()
            Job.objects.create(owner_id=self.owner_id, provider="local", name="writer")
            self.latencies.append(time.perf_counter() - started)
        connection.close()

    def figures(self, seconds: float) -> tuple[float, float]:
        return len(self.latencies) / seconds, max(self.latencies) * 1000


def timed_writer(owner_id: int, during: Callable[[], object]) -> tuple[float, float, float]:
    writer = Writer(owner_id)
    writer.start()
    time.sleep(0.2)
    started = time.perf_counter()
    during()
    elapsed = time.perf_counter() - started
    writer.stop.set()
    writer.join()
    rate, worst = writer.figures(elapsed + 0.2)
    return elapsed, rate, worst


def measure(n: int) -> dict[str, float]:
    from cloudops.backup import JobStore

    owner_id = seed(n)
    store = JobStore()
    size_mb = store.db_path.stat().st_size / 2**20
    _, alone_rate, alone_worst = timed_writer(owner_id, lambda: time.sleep(1.0))
    result: dict[str, Path] = {}
    backup_s, during_rate, during_worst = timed_writer(owner_id, lambda: result.update(plain=store.backup()))
    started = time.perf_counter()
    gz = store.backup(gzip=True)
    gzip_s = time.perf_counter() - started
    started = time.perf_counter()
    store.restore(result["plain"])
    restore_s = time.perf_counter() - started
    return {
        "jobs": n,
        "size_mb": size_mb,
        "backup_s": backup_s,
        "backup_mb_s": size_mb / backup_s,
        "gzip_s": gzip_s,
        "gzip_ratio": gz.stat().st_size / result["plain"].stat().st_size,
        "writer_alone_per_s": alone_rate,
        "writer_alone_worst_ms": alone_worst,
        "writer_during_per_s": during_rate,
        "writer_during_worst_ms": during_worst,
        "restore_s": restore_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as home:
            setup_django(Path(home))
            print(json.dumps(measure(args.one)))
        return
    print(
        f"{'jobs':>8} {'MB':>7} {'backup':>8} {'MB/s':>6} {'gzip':>7} {'ratio':>6} "
        f"{'writes/s alone':>15} {'worst ms':>9} {'writes/s during':>16} {'worst ms':>9} {'restore':>8}"
    )
    for n in args.sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n)], capture_output=True, text=True, check=True
        ).stdout
        f = json.loads(out.strip().splitlines()[-1])
        print(
            f"{f['jobs']:>8,} {f['size_mb']:>7.1f} {f['backup_s']:>7.2f}s {f['backup_mb_s']:>6.0f} "
            f"{f['gzip_s']:>6.2f}s {f['gzip_ratio']:>6.3f} {f['writer_alone_per_s']:>15.0f} "
            f"{f['writer_alone_worst_ms']:>9.1f} {f['writer_during_per_s']:>16.0f} {f['writer_during_worst_ms']:>9.1f} "
            f"{f['restore_s']:>7.2f}s"
        )


if __name__ == "__main__":
    main()
