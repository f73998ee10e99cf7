"""The metrics thread of a server process: flushes HTTP counters and refreshes cached
aggregates, so scrapes stay cheap and agree across processes.

Started by cloudops/asgi.py (server processes only, like the job sync). Each pass does its
work only while the export is enabled; the HTTP buffer is flushed regardless so the
counters are complete from the moment the export is turned on.
"""

from __future__ import annotations

import atexit

from django.conf import settings

from cloudops.background import PeriodicThread
from cloudops.metrics.cache import refreshing
from cloudops.metrics.django_process import django_metrics_follow
from cloudops.metrics.exposition import render
from cloudops.metrics.http import http_flush
from cloudops.metrics.services import metrics_config_get
from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.metrics")


def metrics_worker_pass(*, refresh: bool) -> None:
    """One pass: flush this process's HTTP counts, follow the configuration's `django`
    category (django_process); with `refresh`, recompute cached aggregates."""
    http_flush()
    config = metrics_config_get()
    django_metrics_follow(config)
    if not refresh or settings.SIMPLETUNER_METRICS_CACHE_SECONDS <= 0:
        return
    if config.prometheus_enabled:
        with refreshing():
            render(config.prometheus_categories)


class _Passes:
    """Flush on every pass; recompute the cached aggregates on a pass every quarter of the
    cache age (what is past half of it), so no value gets older than 3/4 of the age and a
    scrape never computes inline. A failed pass leaves the refresh due for the next one."""

    def __init__(self) -> None:
        self.since_refresh: float | None = None

    def __call__(self) -> None:
        flush_every = settings.SIMPLETUNER_METRICS_FLUSH_SECONDS
        refresh_every = max(flush_every, settings.SIMPLETUNER_METRICS_CACHE_SECONDS / 4)
        self.since_refresh = (refresh_every if self.since_refresh is None else self.since_refresh) + flush_every
        due = self.since_refresh >= refresh_every
        metrics_worker_pass(refresh=due)
        if due:
            self.since_refresh = 0


_thread = PeriodicThread("metrics", _Passes(), lambda: settings.SIMPLETUNER_METRICS_FLUSH_SECONDS, wait_first=True)


def _flush_at_exit() -> None:
    try:
        http_flush()
    except Exception:
        logger.warning("final metrics flush failed", exc_info=True)


def start_metrics_worker() -> bool:
    """Start this process's metrics thread once; returns False if it already runs."""
    if not _thread.start():
        return False
    atexit.register(_flush_at_exit)
    return True


def stop_metrics_worker(timeout: float = 10) -> None:
    _thread.stop(timeout)
