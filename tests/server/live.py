"""Start a real server process for a test or a bench: ours (`make run`, `manage.py serve`, over
HTTP or HTTPS) or another one (moto, Prometheus, a stub) that answers HTTP on a path."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.processes import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 60, *, verify: ssl.SSLContext | bool = True
) -> None:
    """Wait until `url` gives any answer; fail if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1, verify=verify)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"server did not answer at {url} within {timeout}s")


# What a server process must never log: a traceback (uvicorn, daphne, our own logging) or a 500.
ERROR_MARKERS = (
    "Traceback (most recent call last)",
    "Exception in ASGI application",
    "Exception inside application",
    '"status": 500,',  # the JSON access log
    " status=500 ",  # the text access log
)


def assert_clean_log(log: Path) -> None:
    """Fail if the server's log shows a 500 answer or a traceback."""
    text = log.read_text(errors="replace")
    for marker in ERROR_MARKERS:
        assert marker not in text, f"{log.name} has {marker!r}:\n{text[-5000:]}"


@contextmanager
def running(
    argv: list[str], env: dict[str, str], port: int, log: Path, *, errors_expected: bool = False
) -> Iterator[str]:
    """Run `argv` in its own process group; yield the base URL; stop the whole group after.
    Afterwards the log must show no 500 and no traceback, unless `errors_expected`."""
    with running_process(argv, env, port, log, errors_expected=errors_expected) as (base, _):
        yield base


@contextmanager
def running_process(
    argv: list[str],
    env: dict[str, str],
    port: int,
    log: Path,
    *,
    errors_expected: bool = False,
    ready_path: str = "/api/cloud/health/live",
    ca: Path | str | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`running`, also yielding the process (`manage.py serve` is the server process itself,
    under uvicorn and under daphne, which it execs). The server is up once `ready_path` gives
    any answer. With `ca` it speaks HTTPS with a certificate that CA signed: the base URL is
    https:// and the probe checks the certificate."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    scheme, verify = ("http", True) if ca is None else ("https", ssl.create_default_context(cafile=str(ca)))
    base = f"{scheme}://127.0.0.1:{port}"
    try:
        try:
            wait_until_up(base + ready_path, proc, verify=verify)
        except AssertionError as failed:
            raise AssertionError(f"{failed}; {log.name}:\n{log.read_text(errors='replace')[-5000:]}") from None
        yield base, proc
    finally:
        stop_group(proc)
    if not errors_expected:
        assert_clean_log(log)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers (a test may have killed it already).
    `proc` must have been started with `start_new_session=True`: it leads the group."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        proc.wait()
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def process_status(pid: int) -> dict[str, int]:
    """Threads and resident memory (KiB) of a process, from /proc/<pid>/status."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("Threads", "VmRSS"):
                fields[name] = int(value.split()[0])
    return {"threads": fields["Threads"], "rss_kib": fields["VmRSS"]}
