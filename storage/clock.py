"""The storage app's clock.

Every storage module that needs the time reads it as `clock.now()`, through the module
(`from storage import clock`), never `from storage.clock import now`: one patch of
`storage.clock.now` then moves the time for authentication (skew, presigned expiry), write
windows, upload times, multipart initiation and the cleanup of abandoned uploads alike. The
functions that compare against a time (`signing.check_time`, `signing.verify_v2`,
`Credential.check_write`, `store.stale_entries`) read no clock: their caller passes `now`.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    """The server time, timezone-aware (UTC)."""
    return timezone.now()
