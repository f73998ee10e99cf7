"""Real loopback servers for outbound-HTTP tests: plain/TLS JSON servers and a forward proxy.

Each runs a ThreadingHTTPServer on 127.0.0.1 and a free port in a daemon thread; use them
as context managers (or call stop()) so no thread or socket outlives the test.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trustme


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Handler = Callable[[Recorded], Reply]


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        recorded = Recorded(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
        with self.server.owner.lock:
            self.server.owner.requests.append(recorded)
        reply = self.server.owner.handler(recorded)
        if reply.delay:
            time.sleep(reply.delay)
        payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            headers = {"Content-Type": "application/json", **reply.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LoopbackServer


class LoopbackServer:
    """An HTTP(S) server on 127.0.0.1 answering with `handler`, recording every request."""

    def __init__(self, handler: Handler | None = None, *, tls: ssl.SSLContext | None = None) -> None:
        self.handler: Handler = handler or (lambda recorded: Reply(body={"ok": True, "path": recorded.path}))
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._request_handler())
        self._server.owner = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def _request_handler(self) -> type[BaseHTTPRequestHandler]:
        return _RequestHandler

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class SelfSignedTLS:
    """A private CA and a certificate for 127.0.0.1 / localhost signed by it."""

    ca_pem: Path
    server_context: ssl.SSLContext


def self_signed_tls(directory: Path) -> SelfSignedTLS:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_pem = directory / "private-ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    return SelfSignedTLS(ca_pem=ca_pem, server_context=context)


class _ProxyHandler(BaseHTTPRequestHandler):
    """A forward proxy: absolute-URI requests are relayed, CONNECT opens a tunnel."""

    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _record(self) -> None:
        with self.server.owner.lock:
            self.server.owner.requests.append(Recorded(self.command, self.path, dict(self.headers.items()), b""))

    def do_CONNECT(self) -> None:
        self._record()
        host, port = self.path.rsplit(":", 1)
        try:
            upstream = socket.create_connection((host, int(port)), timeout=5)
        except OSError:
            self.send_error(502)
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self._pipe(self.connection, upstream)

    @staticmethod
    def _pipe(client: socket.socket, upstream: socket.socket) -> None:
        sockets = [client, upstream]
        try:
            while True:
                readable, _, broken = select.select(sockets, [], sockets, 5)
                if broken or not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)
        finally:
            upstream.close()

    def _relay(self) -> None:
        self._record()
        target = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with socket.create_connection((target.hostname, target.port or 80), timeout=5) as upstream:
            path = target.path + (f"?{target.query}" if target.query else "")
            lines = [f"{self.command} {path} HTTP/1.1"]
            lines += [
                f"{k}: {v}" for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")
            ]
            lines.append("Connection: close")
            upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            response = b""
            while chunk := upstream.recv(65536):
                response += chunk
        self.wfile.write(response)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _relay


class ProxyServer(LoopbackServer):
    """A forward proxy that records what went through it (`requests`: method, target)."""

    def _request_handler(self) -> type[BaseHTTPRequestHandler]:
        return _ProxyHandler
