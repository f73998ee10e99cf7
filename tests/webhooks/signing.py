"""Standard Webhooks signing for tests, through the standardwebhooks package itself."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook


def signed_headers(
    secret: str,
    body: bytes,
    *,
    msg_id: str | None = None,
    timestamp: float | None = None,
    extra_signatures: tuple[str, ...] = (),
) -> dict[str, str]:
    msg_id = msg_id or f"msg_{secrets.token_hex(12)}"
    stamp = int(time.time() if timestamp is None else timestamp)
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(stamp, tz=UTC), body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": " ".join((*extra_signatures, signature)),
    }
