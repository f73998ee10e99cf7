#!/usr/bin/env python
"""The audit chain at scale, on SQLite: seed N chained entries, then measure

- a full verification, run in a fresh process whose peak RSS is reported (flat memory:
  entries are streamed in keyset batches),
- the metrics totals (`audit_totals`: total and last 24 h, no table scan),
- the stats document (`audit_stats`: the per-type counts group an index),
- a verification of a 1,000-entry range (all entries when there are fewer).

    .venv/bin/python bench/audit_chain.py                       # 10k, 100k and 1M entries
    .venv/bin/python bench/audit_chain.py --sizes 1000 20000    # quicker

Each size uses a fresh SQLite database in a temporary SIMPLETUNER_HOME. Figures are recorded
in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.django_setup import setup_django  # noqa: E402

BATCH = 5000


def seed(n: int) -> None:
    """N entries spread over the last 10 days, chained exactly as audit_record chains them."""
    from audit.chain import HeadState, audit_key, entry_mac
    from audit.models import AuditEntry, AuditHead

    key, prev, now = audit_key(), "", datetime.now(UTC)
    types = ["auth.login.success", "job.submitted", "job.status_changed", "storage.upload", "rate_limited"]
    start = now - timedelta(days=10)
    step = timedelta(days=10) / n
    rows = []
    for sequence in range(1, n + 1):
        fields = {
            "sequence": sequence,
            "timestamp": start + step * sequence,
            "event_type": types[sequence % len(types)],
            "actor_username": f"user{sequence % 50}",
            "actor_api_key": "",
            "actor_ip": f"10.0.{sequence % 256}.{sequence % 200}",
            "target_type": "job",
            "target_id": str(sequence),
            "action": "",
            "details": {"n": sequence, "note": "bench"},
        }
        prev = entry_mac(key, fields, prev)
        rows.append(AuditEntry(**fields, mac=prev))
        if len(rows) == BATCH:
            AuditEntry.objects.bulk_create(rows)
            rows = []
    AuditEntry.objects.bulk_create(rows)
    head = HeadState(last_sequence=n, last_mac=prev, key_id=key.key_id)
    AuditHead.objects.update_or_create(
        pk=1, defaults=HeadState(**{**head.as_dict(), "mac": head.expected_mac(key)}).as_dict()
    )


def timed(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def verify_child() -> None:
    """Run in a fresh process: one full verification, its time and this process's peak RSS."""
    setup_django(Path(os.environ["SIMPLETUNER_HOME"]), migrate=False)
    from audit.verification import audit_verify

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    result = audit_verify(record=False)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {"ok": result.ok, "checked": result.checked, "seconds": seconds, "base_kb": baseline, "peak_kb": peak}
        )
    )


def measure(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as home:
        env = {**os.environ, "SIMPLETUNER_HOME": home}
        subprocess.run([sys.executable, __file__, "--seed", str(n)], env=env, check=True)
        out = subprocess.run([sys.executable, __file__, "--verify-child"], env=env, check=True, capture_output=True)
        verify = json.loads(out.stdout)
        assert verify["ok"] and verify["checked"] == n, verify
        reads = subprocess.run([sys.executable, __file__, "--reads"], env=env, check=True, capture_output=True)
        return {"n": n, **verify, **json.loads(reads.stdout)}


def reads_child() -> None:
    setup_django(Path(os.environ["SIMPLETUNER_HOME"]), migrate=False)
    from audit.selectors import audit_stats, audit_totals
    from audit.verification import audit_verify

    totals = audit_totals()
    # Up to 1,000 entries around the middle, inside 1..total: audit_verify refuses a range
    # past the last entry (AuditRangeError), which a fixed middle..middle+999 was below 2,000.
    lo = max(1, totals.total // 2 - 499)
    hi = min(totals.total, lo + 999)
    print(
        json.dumps(
            {
                "totals_ms": timed(audit_totals),
                "last_24h": totals.last_24h,
                "stats_ms": timed(audit_stats, repeat=3),
                "range_1k_ms": timed(lambda: audit_verify(from_sequence=lo, to_sequence=hi, record=False)),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--verify-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reads", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if (args.seed or args.verify_child or args.reads) and "SIMPLETUNER_HOME" not in os.environ:
        parser.error("--seed, --verify-child and --reads are the run's own child steps; run with --sizes only")
    if args.seed:
        setup_django(Path(os.environ["SIMPLETUNER_HOME"]))
        seed(args.seed)
        return
    if args.verify_child:
        return verify_child()
    if args.reads:
        return reads_child()
    print(f"{'entries':>10} {'verify s':>9} {'entries/s':>10} {'RSS base MB':>12} {'RSS peak MB':>12} "
          f"{'totals ms':>10} {'stats ms':>9} {'1k range ms':>12} {'last 24h':>9}")  # fmt: skip
    for n in args.sizes:
        m = measure(n)
        print(
            f"{n:>10,} {m['seconds']:>9.1f} {n / m['seconds']:>10,.0f} {m['base_kb'] / 1024:>12.1f} "
            f"{m['peak_kb'] / 1024:>12.1f} {m['totals_ms']:>10.2f} {m['stats_ms']:>9.1f} "
            f"{m['range_1k_ms']:>12.1f} {m['last_24h']:>9,}",
            flush=True,
        )


if __name__ == "__main__":
    main()
