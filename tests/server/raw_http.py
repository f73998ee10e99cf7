"""A raw HTTP/1.1 exchange that reads the answer while it is still sending the body, as curl
does: a server may answer (413) before the body is over and stop reading it. httpx and
requests send the whole body first, so they cannot show that."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes
    body_sent: bool  # the client got to send its whole body before the answer came

    def json(self) -> Any:
        return json.loads(self.body)


def chunked(pieces: Iterable[bytes]) -> Iterable[bytes]:
    """`pieces` in chunked transfer coding, with the closing chunk at the end."""
    for piece in pieces:
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"


def exchange(base: str, method: str, path: str, headers: dict[str, str], body: Iterable[bytes] = ()) -> Answer:
    parts = urlsplit(base)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        body_sent = _send_until_answered(sock, body)
        sock.settimeout(20)
        return _read_answer(sock, body_sent)


def _send_until_answered(sock: socket.socket, body: Iterable[bytes]) -> bool:
    pieces = iter(body)
    pending = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not pending:
            pending = next(pieces, b"")
            if not pending:
                return True
        readable, writable, _ = select.select([sock], [sock], [], 1)
        if readable:
            return False  # the server answered (or closed) mid-body
        if writable:
            try:
                pending = pending[sock.send(pending[:65536]) :]
            except (BrokenPipeError, ConnectionResetError):
                return False
    raise AssertionError("the server neither read the body nor answered")


def _read_answer(sock: socket.socket, body_sent: bool) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed without an answer: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Answer(int(status_line.split()[1]), headers, rest[:length], body_sent)
