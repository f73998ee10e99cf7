#!/usr/bin/env python
"""Servers side by side: several `manage.py serve` processes up at once (e.g. limiting off,
and on with the code of two checkouts), loaded in turn in short slices, round after round, so
the machine's load hits each alike. Prints each server's median CPU per request (from /proc),
context switches per request, and its ratio to the first server's figure in the same round.

    .venv/bin/python bench/ratelimit_ab.py '[["off", ".", {"RATE_LIMIT_CALLS": "0"}],
        ["on", ".", {"RATE_LIMIT_CALLS": "10000000000"}]]' --rounds 8 --seconds 3

Each entry is [label, checkout directory (its manage.py is served), extra environment]. The
load is bench/ratelimit.py's: the anonymous 401 from 8 keep-alive client threads and 256
forwarded client addresses. Figures: bench/README.md (issue 15 item 3).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ratelimit import base_env, load  # noqa: E402
from bench.s3_upload import cpu_seconds  # noqa: E402
from tests.server.live import free_port, running_process  # noqa: E402


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of every thread of a process."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as status:
                total += sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("servers", help="JSON list of [label, directory, {env}]")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    specs = json.loads(args.servers)
    with tempfile.TemporaryDirectory(prefix="bench-ratelimit-ab-") as tmp, ExitStack() as stack:
        servers = []
        for label, directory, extra in specs:
            env = base_env(Path(tmp) / label, **extra)
            manage = str(Path(directory).resolve() / "manage.py")
            subprocess.run([sys.executable, manage, "migrate", "-v", "0"], env=env, check=True)
            port = free_port()
            argv = [sys.executable, manage, "serve", "--host", "127.0.0.1", "--port", str(port)]
            base, proc = stack.enter_context(running_process(argv, env, port, Path(tmp) / f"{label}.log"))
            load(base, 1.0, None)  # warm up
            servers.append((label, base, proc.pid))
        results: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in servers}
        loads = [os.getloadavg()[0]]
        for n in range(args.rounds):
            for label, base, pid in servers[n % len(servers) :] + servers[: n % len(servers)]:
                cpu, switches = cpu_seconds(pid), context_switches(pid)
                _, count = load(base, args.seconds, None)
                results[label].append(
                    ((cpu_seconds(pid) - cpu) * 1000 / count, (context_switches(pid) - switches) / count)
                )
            loads.append(os.getloadavg()[0])
        report(results, loads, args.rounds, args.seconds)


def report(results: dict[str, list[tuple[float, float]]], loads: list[float], rounds: int, seconds: float) -> None:
    first = next(iter(results))
    print(f"{rounds} rounds of {seconds:g} s per server, load average {min(loads):.1f} to {max(loads):.1f}")
    for label, runs in results.items():
        ratios = [cpu / base[0] for (cpu, _), base in zip(runs, results[first], strict=True)]
        print(
            f"  {label:<16} {statistics.median(c for c, _ in runs):.3f} ms CPU/request, "
            f"{statistics.median(s for _, s in runs):.1f} context switches/request, "
            f"against {first}: {(statistics.median(ratios) - 1) * 100:+.0f}% "
            f"({', '.join(f'{(r - 1) * 100:+.0f}' for r in ratios)})"
        )


if __name__ == "__main__":
    main()
