"""`from simpletuner.simpletuner_sdk.server.services.cloud import JobStore`: cloudops.backup.JobStore.

JobStore is loaded (and Django set up) on first use, so importing this package's
`structured_logging` module, which needs no Django, does not configure Django or touch
SIMPLETUNER_HOME.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudops.backup import JobStore

__all__ = ["JobStore"]


def __getattr__(name: str) -> Any:
    if name == "JobStore":
        from simpletuner._django import ensure_django

        ensure_django()
        from cloudops.backup import JobStore

        return JobStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
