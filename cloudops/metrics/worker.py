"""The metrics thread of a server process: flushes HTTP counters and refreshes cached
aggregates, so scrapes stay cheap and agree across processes.

Started by cloudops/asgi.py (server processes only, like the job sync). Each pass does its
work only while the export is enabled; the HTTP buffer is flushed regardless so the
counters are complete from the moment the export is turned on.
"""

from __future__ import annotations

import atexit
import threading

from django.conf import settings
from django.db import connection

from cloudops.metrics.cache import refreshing
from cloudops.metrics.exposition import render
from cloudops.metrics.http import http_flush
from cloudops.metrics.services import metrics_config_get
from cloudops.structured_logging import get_logger

logger = get_logger("cloudops.metrics")

_lock = threading.Lock()
_thread: threading.Thread | None = None
_stop = threading.Event()


def metrics_worker_pass(*, refresh: bool) -> None:
    """One pass: flush this process's HTTP counts; with `refresh`, recompute cached aggregates."""
    http_flush()
    if not refresh or settings.SIMPLETUNER_METRICS_CACHE_SECONDS <= 0:
        return
    config = metrics_config_get()
    if config.prometheus_enabled:
        with refreshing():
            render(config.prometheus_categories)


def _loop() -> None:
    flush_every = settings.SIMPLETUNER_METRICS_FLUSH_SECONDS
    # A pass every quarter of the cache age recomputes what is past half of it, so no value
    # gets older than 3/4 of the age and a scrape never computes inline.
    refresh_every = max(flush_every, settings.SIMPLETUNER_METRICS_CACHE_SECONDS / 4)
    since_refresh = refresh_every
    while not _stop.wait(flush_every):
        since_refresh += flush_every
        try:
            metrics_worker_pass(refresh=since_refresh >= refresh_every)
            if since_refresh >= refresh_every:
                since_refresh = 0
        except Exception:  # keep going: the database may be back next time
            logger.exception("metrics worker pass failed")
        finally:
            connection.close()


def _flush_at_exit() -> None:
    try:
        http_flush()
    except Exception:
        logger.warning("final metrics flush failed", exc_info=True)


def start_metrics_worker() -> bool:
    """Start this process's metrics thread once; returns False if it already runs."""
    global _thread
    with _lock:
        if _thread is not None and _thread.is_alive():
            return False
        _stop.clear()
        _thread = threading.Thread(target=_loop, name="metrics", daemon=True)
        _thread.start()
    atexit.register(_flush_at_exit)
    return True


def stop_metrics_worker(timeout: float = 10) -> None:
    _stop.set()
    if _thread is not None:
        _thread.join(timeout)
