"""Real secret stores for the tests, started on loopback on free ports.

AWS Secrets Manager is moto in server mode (`moto_server`, a real HTTP server speaking the
AWS API); Vault is a real OpenBao dev server (`bao server -dev`, KV v2 mounted at `secret/`).
A test may kill a server to simulate an outage and start it again on the same port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.server.live import free_port

VAULT_ROOT_TOKEN = "cloudops-test-root-token"


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A free port whose next port is free too (bao's dev cluster listener takes port + 1)."""
    for _ in range(50):
        port = free_port()
        if port < 65535 and _port_is_free(port + 1):
            return port
    raise AssertionError("no two consecutive free ports on 127.0.0.1")


class ServerProcess:
    """One server process in its own process group, with its output in a log file."""

    def __init__(
        self, name: str, argv: Callable[[int], list[str]], ready_path: str, workdir: Path, port: int | None = None
    ) -> None:
        self.name = name
        self._argv = argv
        self._ready_path = ready_path
        self._workdir = workdir
        self.port = port or free_port_pair()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._starts = 0

    def start(self) -> ServerProcess:
        self._starts += 1
        log = self._workdir / f"{self.name}-{self._starts}.log"
        # HOME is private so `bao` never writes a token helper file into the real home.
        env = {**os.environ, "HOME": str(self._workdir)}
        with log.open("wb") as out:
            self._proc = subprocess.Popen(
                self._argv(self.port),
                cwd=self._workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_up(log)
        return self

    def _wait_until_up(self, log: Path, timeout: float = 60) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self._proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + self._ready_path, timeout=1).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not answer at {self.url} within {timeout}s")

    def kill(self) -> None:
        """Stop the server abruptly, as a crash or a network cut would."""
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=15)
        self._proc = None


def moto_server(moto: str, workdir: Path) -> ServerProcess:
    return ServerProcess("moto", lambda port: [moto, "-H", "127.0.0.1", "-p", str(port)], "/moto-api/", workdir)


def bao_server(bao: str, workdir: Path) -> ServerProcess:
    def argv(port: int) -> list[str]:
        return [
            bao,
            "server",
            "-dev",
            f"-dev-root-token-id={VAULT_ROOT_TOKEN}",
            f"-dev-listen-address=127.0.0.1:{port}",
            "-dev-no-store-token",
        ]

    return ServerProcess("bao", argv, "/v1/sys/health", workdir)
