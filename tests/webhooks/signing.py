"""Standard Webhooks signing for tests, through the standardwebhooks package itself."""

from __future__ import annotations

import json
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


def local_secret_for(body: bytes) -> str:
    """The secret of the local job a delivery names (its `job_id` or `data.job_id`), as the
    job itself would sign with; a body naming no job gets the secret of job id "".
    (Imported here: signed_headers serves the benches too, which run without Django settings.)"""
    from providers.credentials import local_webhook_secret

    try:
        event = json.loads(body)
    except ValueError:
        return local_webhook_secret("")
    if not isinstance(event, dict):
        return local_webhook_secret("")
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    job_id = event.get("job_id") or data.get("job_id") or ""
    return local_webhook_secret(job_id if isinstance(job_id, str) else "")
