"""A loopback receiver for outbound notifications: a real HTTP server in a thread that records
every request and answers with the statuses it is told, in turn (then 200)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    # (status, extra headers) answered in turn; 200 once it is empty.
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    # While set, requests wait until it is cleared... by an event (a hung receiver).
    hang: threading.Event | None = None


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if receiver.hang is not None:
                receiver.hang.wait(60)
            status, headers = receiver.answers.pop(0) if receiver.answers else (200, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Receiver(url="")))
    recv = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook")
    server.RequestHandlerClass = _handler(recv)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recv
    if recv.hang is not None:
        recv.hang.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def allow_loopback(settings: SettingsWrapper) -> None:
    """The receivers here listen on loopback; the refusal tests turn this off again."""
    settings.SIMPLETUNER_NOTIFICATIONS_ALLOW_PRIVATE = True
    settings.SIMPLETUNER_METRICS_CACHE_SECONDS = 0


@pytest.fixture(autouse=True)
def own_jobs_dir(local_jobs_dir: Path) -> None:
    """Local jobs of these tests run in a directory of their own."""
