"""HTTP request counters per endpoint, shared by every server process.

The middleware adds each response to an in-memory buffer (a dict update under a lock: no
I/O on the request path). `http_flush()` moves the buffer into HttpRouteStat rows with
`UPDATE ... SET requests = requests + n`, so deltas from any number of processes and hosts
add up. Server processes flush every SIMPLETUNER_METRICS_FLUSH_SECONDS
(cloudops.metrics.worker), and a scrape flushes its own process first; a scrape therefore
shows the other processes' requests up to one flush interval late. We chose the database
over prometheus_client's multiprocess mode because that mode only sums processes that
share one directory on one host and needs its files wiped on every deploy; see the README.
"""

from __future__ import annotations

import threading
import time

from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponseBase

from cloudops.metrics.models import HttpRouteStat
from cloudops.middleware import DualModeMiddleware, request_route
from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.metrics")

# Any other method (clients can send anything) shares one label, to bound cardinality.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Requests no URL pattern matched: one label, never the raw path (ids, scanners' probes).
UNMATCHED = "unmatched"

_lock = threading.Lock()
# (endpoint, status) -> [requests, latency_ms_sum], not yet in the database.
_pending: dict[tuple[str, int], list[float]] = {}


def endpoint_label(request: HttpRequest) -> str:
    """`POST_/api/cloud/jobs/submit`: the method and the route pattern that served the request."""
    route = request_route(request)
    if route is None:
        return UNMATCHED
    method = request.method if request.method in KNOWN_METHODS else "OTHER"
    return f"{method}_{route}"


def http_record(endpoint: str, status: int, latency_ms: float) -> None:
    with _lock:
        entry = _pending.setdefault((endpoint, status), [0, 0.0])
        entry[0] += 1
        entry[1] += latency_ms


def http_flush() -> int:
    """Add this process's buffered counts to the database; returns the requests written.

    One transaction (one commit for all endpoints); if the database refuses, the whole batch
    goes back into the buffer for the next flush, so nothing is lost or counted twice. Rows are
    updated in one global order (sorted keys): every process then takes the row locks in the
    same order, so two processes flushing at once wait for each other instead of deadlocking
    (each process's buffer is in the order its requests came, which differs between processes).
    """
    with _lock:
        batch = dict(_pending)
        _pending.clear()
    if not batch:
        return 0
    try:
        with transaction.atomic():
            for endpoint, status in sorted(batch):
                count, latency = batch[(endpoint, status)]
                _add(endpoint, status, int(count), latency)
    except Exception:
        _restore(batch)
        raise
    return int(sum(count for count, _ in batch.values()))


def _restore(batch: dict[tuple[str, int], list[float]]) -> None:
    with _lock:
        for key, (count, latency) in batch.items():
            entry = _pending.setdefault(key, [0, 0.0])
            entry[0] += count
            entry[1] += latency


def _add(endpoint: str, status: int, count: int, latency_ms: float) -> None:
    rows = HttpRouteStat.objects.filter(endpoint=endpoint, status=status)
    increment = {"requests": F("requests") + count, "latency_ms_sum": F("latency_ms_sum") + latency_ms}
    if rows.update(**increment):
        return
    try:
        with transaction.atomic():
            HttpRouteStat.objects.create(endpoint=endpoint, status=status, requests=count, latency_ms_sum=latency_ms)
    except IntegrityError:
        # Another process created the row between our UPDATE and INSERT: add to it instead.
        rows.update(**increment)


class HttpMetricsMiddleware(DualModeMiddleware):
    """Counts every response (errors included: Django turns exceptions into 500 responses
    inside the stack) with its endpoint label, status and latency. Sits below the static
    files middleware, so static assets are not counted."""

    def sync_call(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = self.get_response(request)
        _record(request, response, started)  # type: ignore[arg-type]
        return response  # type: ignore[return-value]

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = await self.get_response(request)  # type: ignore[misc]
        _record(request, response, started)
        return response


def _record(request: HttpRequest, response: HttpResponseBase, started: float) -> None:
    # Bounded to the column; route patterns are far shorter.
    http_record(endpoint_label(request)[:255], response.status_code, (time.perf_counter() - started) * 1000)
