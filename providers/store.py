"""The backup API's old address: it lives in `cloudops.backup` now.

The backup covers the whole database (audit trail, API keys, rate-limit state), not just the
jobs, so it moved out of `providers`. Operators' scripts import `from providers.store import
JobStore`, which is the documented import, so this module keeps exactly the documented names
working: `JobStore` and the two errors its methods are documented to raise. Everything else
is imported from `cloudops.backup`.
"""

from __future__ import annotations

from cloudops.backup import JobStore, NotSQLiteError, RestoreRefused

__all__ = ["JobStore", "NotSQLiteError", "RestoreRefused"]
