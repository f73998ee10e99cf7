"""Rate-limit state for the `database` backend (SQLite, PostgreSQL, MySQL/MariaDB).

One row per limited key, holding the admitted timestamps of its current window, packed
(backends.database.encode_hits; a JSON array is read too): the row is what a check locks, so each key's read-decide-write is atomic while
different keys never wait for each other. Times are Unix seconds (floats), like the Redis
backend's scores, so both backends share one clock and no timezone conversion.
"""

from __future__ import annotations

from django.db import models


class RateLimitBucket(models.Model):
    """The admitted requests of one key in its sliding window."""

    key = models.CharField(max_length=255, primary_key=True)
    # Unix timestamps, oldest first, packed by backends.database.encode_hits (or a JSON array,
    # as the default); only those inside the window are kept.
    hits = models.TextField(default="[]")
    window = models.FloatField()
    # Newest hit + window: after this the row holds nothing and pruning deletes it.
    expires_at = models.FloatField(db_index=True)

    class Meta:
        verbose_name = "rate-limit state"
        verbose_name_plural = "rate-limit state"

    def __str__(self) -> str:
        return self.key


class RateLimitCounter(models.Model):
    """Instance-wide counters (violations total), shared by every server process."""

    name = models.CharField(max_length=64, primary_key=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class SlotLease(models.Model):
    """One open long-lived request (an event stream) holding a slot of `pool` for `owner`
    until `expires_at` (Unix seconds) unless refreshed before (cloudops/ratelimit/slots.py)."""

    lease = models.CharField(max_length=64, primary_key=True)
    pool = models.CharField(max_length=64)
    owner = models.CharField(max_length=190)
    expires_at = models.FloatField()

    class Meta:
        indexes = [
            models.Index(fields=["pool", "expires_at"], name="ratelimit_slot_pool"),
            models.Index(fields=["pool", "owner", "expires_at"], name="ratelimit_slot_owner"),
        ]

    def __str__(self) -> str:
        return f"{self.pool}/{self.owner}/{self.lease}"
