"""Paging the job list at any size: a keyset cursor, a bounded offset and a capped count.

The list is ordered by (created_at, id), newest first, and every filter of it has an index
ending in those columns (providers.models.Job.Meta.indexes), so a page costs the same at a
thousand jobs and at a million:

- `cursor` is the position after a page's last job: base64url of "<created_at ISO>|<id>",
  opaque to clients. The next page is the jobs strictly before it in the ordering, one
  index range scan, however deep.
- `offset` stays for existing clients, bounded at MAX_JOB_OFFSET: skipping rows costs as
  many rows as it skips, so deeper pages take the cursor.
- `total` counts at most TOTAL_COUNT_CAP matching jobs (an index scan that stops there). At
  or below the cap it is exact (`total_exact: true`); above it `total` is the cap and
  `total_exact` false: "at least this many", as Elasticsearch's `track_total_hits` and
  GitLab's capped counts answer. The cap equals the offset bound, so an offset client can
  still reach every page `total` announces.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

MAX_JOB_OFFSET = 10_000
TOTAL_COUNT_CAP = MAX_JOB_OFFSET
# Job ids are S3 bucket names (providers.models.Job.id: at most 63 characters).
_MAX_ID = 63


class BadCursor(ValueError):
    """The `cursor` parameter is not one this server handed out."""


@dataclass(frozen=True)
class JobCursor:
    """The (created_at, id) of the last job of a page: the next page starts after it."""

    created_at: datetime
    id: str

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, value: str) -> JobCursor:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            stamp, job_id = raw.split("|", 1)
            created_at = datetime.fromisoformat(stamp)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise BadCursor("not a cursor of this list: pass a page's `next_cursor` unchanged") from None
        if created_at.tzinfo is None or not job_id or len(job_id) > _MAX_ID:
            raise BadCursor("not a cursor of this list: pass a page's `next_cursor` unchanged")
        return cls(created_at=created_at, id=job_id)
