"""A Redis server of the test's own, on a free port, that a test can hang (SIGSTOP) and resume.

Never the shared Redis on 6379: hanging that one would stall everyone's tests. The server
keeps nothing on disk (--save "" --appendonly no) and is killed when the block ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.server.live import free_port
from tests.services import require_tool


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @contextmanager
    def hung(self) -> Iterator[None]:
        """Redis stopped (SIGSTOP) inside the block: connections open, nothing answers."""
        self.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.process.send_signal(signal.SIGCONT)


def _wait_until_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"redis-server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"redis-server did not listen on port {port} within {timeout}s")


def _start(port: int, directory: Path) -> subprocess.Popen[bytes]:
    binary = require_tool("redis-server")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--daemonize", "no", "--dir", str(directory), "--logfile", str(directory / "redis.log")]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_until_listening(port, process)
    return process


@contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    """A fresh redis-server on a free port (its log in `directory`); killed afterwards. The
    server may be restarted inside the block (restart_on_same_port); the last one is killed."""
    port = free_port()
    server = RedisServer(_start(port, directory), port)
    try:
        yield server
    finally:
        # A stopped process does not act on SIGTERM until continued; SIGKILL works either way.
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()


def restart_on_same_port(server: RedisServer, directory: Path) -> RedisServer:
    """Kill the server (it keeps nothing, like a restart of the default configuration) and start
    a new, empty one on the same port; `server` now names the new process."""
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    server.process = _start(server.port, directory)
    return server
