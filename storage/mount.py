"""Where the S3 endpoint is mounted, and where its body stream travels in the ASGI scope.

A module of its own (no Django imports) so that cloudops.asgi and the storage views share the
names without the views importing cloudops.asgi, which starts the server's background work.
"""

from __future__ import annotations

STORAGE_MOUNT = "/api/cloud/storage"
BODY_SCOPE_KEY = "cloudops.body"


def is_storage_path(path: str) -> bool:
    return path == STORAGE_MOUNT or path.startswith(STORAGE_MOUNT + "/")
