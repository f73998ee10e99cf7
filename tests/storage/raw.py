"""Hand-built S3 requests for the cases stock clients never send (tampering, framing, limits).

Signed with botocore's own SigV4 signer, so the signature side is an independent implementation.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from storage.credentials import Credential


class _Signer(S3SigV4Auth):
    def __init__(self, credentials: Credentials, payload: str) -> None:
        super().__init__(credentials, "s3", "us-east-1")
        self._payload = payload

    def payload(self, request: AWSRequest, chunk_size: int | None = None) -> str:  # type: ignore[override]
        return self._payload


def signed_headers(
    method: str, url: str, cred: Credential, payload: str, headers: dict[str, str] | None = None
) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, headers=headers or {})
    _Signer(Credentials(cred.access_key_id, cred.secret), payload).add_auth(request)
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}


def open_socket(url: str, ca: str | None = None) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=ca)
        sock = context.wrap_socket(sock, server_hostname=parts.hostname)
    return sock


def request_head(method: str, url: str, headers: dict[str, str]) -> bytes:
    parts = urlsplit(url)
    target = parts.path + ("?" + parts.query if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response_head(sock: socket.socket) -> str:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode("latin-1")
