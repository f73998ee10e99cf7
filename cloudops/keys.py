"""The server key, from which per-purpose keys and credentials are derived.

Credentials that the server must be able to recompute (API keys used as S3 secrets, job
upload secrets, the local provider's webhook secret) are derived from this key instead of
being stored: the database alone never reveals them. Set SIMPLETUNER_SERVER_KEY through the
secrets chain, or let the server generate $SIMPLETUNER_HOME/config/server_key (mode 0600).
Changing it invalidates every derived credential, and takes a restart when it is the generated
file: each process reads that file once (it was a file read per webhook and per API key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import cache
from pathlib import Path

from django.conf import settings

from cloudops.keyfile import read_or_create_key
from cloudops.secrets import get_secret

SERVER_KEY_NAME = "SIMPLETUNER_SERVER_KEY"


def server_key() -> bytes:
    value = get_secret(SERVER_KEY_NAME) or _generated_key(settings.CONFIG_DIR / "server_key")
    return value.encode()


@cache
def _generated_key(path: Path) -> str:
    return read_or_create_key(path)


def derive(purpose: str, *parts: str, key: bytes | None = None) -> bytes:
    """HMAC-SHA256 of `parts` under a key bound to `purpose` (e.g. "api-key", "upload"), from
    the server key (or `key`, a server key the caller has already read)."""
    purpose_key = hmac.new(key or server_key(), purpose.encode(), hashlib.sha256).digest()
    return hmac.new(purpose_key, "\x00".join(parts).encode(), hashlib.sha256).digest()


def derive_token(purpose: str, *parts: str) -> str:
    """`derive` as URL-safe text without padding (43 characters)."""
    return base64.urlsafe_b64encode(derive(purpose, *parts)).rstrip(b"=").decode()
