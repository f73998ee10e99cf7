#!/usr/bin/env python
"""What open event streams cost the server: threads and resident memory per stream.

For each N (50, 200, 1,000 by default) a fresh `manage.py serve` (uvicorn, SQLite, the default
state backend) gets N `GET /api/events/stream` spread over 20 users' API keys. The streams are
held open for --hold seconds, long enough for every one of them to re-check its key and user
and to refresh its slot lease at least twice (both made frequent here), then the server's
thread count and RSS (from /proc/<pid>/status) are read again. Goals: threads flat (they do not
grow with N) and RSS growth under 100 KiB per stream. These are absolute figures: there is no
anchor to measure beside them (the stock Django handler holds one thread per stream, which is
the defect, not a baseline); the thread count is a count and does not depend on the machine.

    .venv/bin/python bench/event_streams.py
    .venv/bin/python bench/event_streams.py --streams 50 200 --hold 15

The caps are raised for the run through the environment (SIMPLETUNER_EVENTS_MAX_PER_USER,
SIMPLETUNER_EVENTS_MAX_STREAMS). Figures: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ratelimit import base_env  # noqa: E402
from tests.server.live import free_port, process_status, running_process  # noqa: E402

USERS = 20

KEYS_CODE = """
import json
from django.contrib.auth import get_user_model
from cloudops.apikeys import api_key_create
keys = [api_key_create(owner=get_user_model().objects.create_user(f"viewer{n}"), name="bench")[1] for n in range(USERS)]
print(json.dumps(keys))
"""


def api_keys(env: dict[str, str]) -> list[str]:
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    made = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", KEYS_CODE.replace("USERS", str(USERS))],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(made.stdout.strip().splitlines()[-1])


def open_stream(port: int, key: str) -> socket.socket:
    """A raw connection holding one stream open, once the server has sent `: connected`."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"GET /api/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
    seen = b""
    while b": connected" not in seen:
        chunk = sock.recv(4096)
        if not chunk or (b"HTTP/1.1 200" not in seen + chunk and b"\r\n\r\n" in seen + chunk):
            raise SystemExit(f"the stream was not opened: {(seen + chunk)[:300]!r}")
        seen += chunk
    return sock


def still_open(sock: socket.socket) -> bool:
    """The stream is alive: heartbeats arrived (and were read here), no end of stream."""
    sock.setblocking(False)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except BlockingIOError:
        pass
    return b"heartbeat" in received and b"event: " not in received


def warm_up(port: int, keys: list[str]) -> None:
    """Streams held through a re-check and a lease refresh, then closed: the shared thread
    pools (the streams' database threads, asyncio's default executor) reach their size and
    the code every stream runs is loaded before the figures are read."""
    warm = [open_stream(port, key) for key in keys * 2]
    time.sleep(6)
    for sock in warm:
        sock.close()
    time.sleep(2)


def measure(n: int, keys: list[str], env: dict[str, str], hold: float) -> dict[str, float]:
    port = free_port()
    argv = [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = Path(env["SIMPLETUNER_HOME"]) / f"serve-{n}.log"
    with running_process(argv, env, port, log) as (_, proc):
        sockets: list[socket.socket] = []
        try:
            warm_up(port, keys)
            before = process_status(proc.pid)
            sockets = [open_stream(port, keys[i % len(keys)]) for i in range(n)]
            peak = 0
            deadline = time.monotonic() + hold
            while time.monotonic() < deadline:
                peak = max(peak, process_status(proc.pid)["threads"])
                time.sleep(0.2)
            after = process_status(proc.pid)
            alive = sum(still_open(sock) for sock in sockets)
        finally:
            for sock in sockets:
                sock.close()
    return {
        "threads_before": before["threads"],
        "threads_after": after["threads"],
        "threads_peak": peak,
        "rss_before_mib": before["rss_kib"] / 1024,
        "rss_after_mib": after["rss_kib"] / 1024,
        "kib_per_stream": (after["rss_kib"] - before["rss_kib"]) / n,
        "alive": alive,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--hold", type=float, default=12.0, help="seconds the streams stay open")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as tmp:
        env = base_env(
            Path(tmp),
            SIMPLETUNER_EVENTS_MAX_PER_USER=str(max(args.streams)),
            SIMPLETUNER_EVENTS_MAX_STREAMS=str(2 * max(args.streams)),
            SIMPLETUNER_EVENTS_HEARTBEAT="2",
            SIMPLETUNER_EVENTS_REAUTH_SECONDS="5",
            SIMPLETUNER_EVENTS_SLOT_LEASE="15",
            RATE_LIMIT_CALLS="0",
        )
        keys = api_keys(env)
        print(f"GET /api/events/stream on manage.py serve (uvicorn, SQLite), {USERS} users' keys, held {args.hold:g} s")
        print(
            f"{'streams':>8} {'threads before/after (peak)':>28} {'RSS before -> after':>22} {'per stream':>12} {'alive':>7}"
        )
        for n in args.streams:
            r = measure(n, keys, env, args.hold)
            threads = f"{r['threads_before']:.0f} / {r['threads_after']:.0f} ({r['threads_peak']:.0f})"
            rss = f"{r['rss_before_mib']:.1f} -> {r['rss_after_mib']:.1f} MiB"
            print(f"{n:>8} {threads:>28} {rss:>22} {r['kib_per_stream']:>8.1f} KiB {r['alive']:>4}/{n}")


if __name__ == "__main__":
    main()
