"""Where the S3 endpoint is mounted, and where its body stream travels in the ASGI scope.

A module of its own (no Django imports) so that cloudops.asgi and the storage views share the
names without the views importing cloudops.asgi, which starts the server's background work.

The endpoint is mounted twice: at STORAGE_MOUNT on every host, and at the root of each host
named in SIMPLETUNER_S3_HOSTS (docs/storage-hosts.md), for clients that cannot sign for an
endpoint with a path (s3cmd, the MinIO client). `root_mounted` turns a request to such a host
into one under STORAGE_MOUNT before anything else sees it, so the request takes exactly the
storage mount's way through the server: its body streams (cloudops.bodies), and rate limits,
metrics, audit and the storage views apply unchanged. Every path of such a host is an S3 path:
`/admin/` there is the bucket "admin", never the admin site. The scope remembers the rewrite
(S3_ROOT_SCOPE_KEY) so that signatures are checked over the path the client signed.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

STORAGE_MOUNT = "/api/cloud/storage"
BODY_SCOPE_KEY = "cloudops.body"
# True in the scope of a request that arrived at the root of an S3 host (see root_mounted).
S3_ROOT_SCOPE_KEY = "cloudops.s3_root"


def is_storage_path(path: str) -> bool:
    return path == STORAGE_MOUNT or path.startswith(STORAGE_MOUNT + "/")


def request_host(scope: dict[str, Any]) -> str:
    """The Host header's name, lower case, without the port ("" if absent)."""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1").strip().lower()
            if host.startswith("["):  # an IPv6 literal: [::1]:8080
                return host.partition("]")[0] + "]"
            return host.partition(":")[0].rstrip(".")
    return ""


def root_mounted(scope: dict[str, Any], hosts: Collection[str]) -> dict[str, Any]:
    """The scope as the storage mount sees it if the request is for one of `hosts`, else as is."""
    if not hosts or request_host(scope) not in hosts:
        return scope
    path = scope.get("path") or "/"
    raw_path = scope.get("raw_path")
    return {
        **scope,
        "path": STORAGE_MOUNT + path,
        "raw_path": STORAGE_MOUNT.encode() + raw_path if raw_path else None,
        S3_ROOT_SCOPE_KEY: True,
    }


def signed_path(path: str, scope: dict[str, Any]) -> str:
    """The path as the client sent and signed it: without the mount for an S3 host's request."""
    if scope.get(S3_ROOT_SCOPE_KEY):
        return path.removeprefix(STORAGE_MOUNT) or "/"
    return path


def client_path(request: Any) -> str:
    """The request's path as the client sees it (for URLs returned to it, e.g. a Location)."""
    return signed_path(request.path, getattr(request, "scope", None) or {})
