"""Django's own metrics (django-prometheus), kept per server process: the `django` category.

django-prometheus defines the metrics (its names, labels and PROMETHEUS_LATENCY_BUCKETS, so
dashboards made for it work): its request metrics (`Metrics`) and its `django_db_*` counters.
We record them from our own places:

- two dual-mode middlewares, first and last in MIDDLEWARE where django-prometheus puts its
  Before and After middlewares (which are MiddlewareMixin ones: each would cost an async
  request two thread hops, cloudops/middleware.py DualModeMiddleware). The first runs its
  Before middleware's code; the last records the per-view metrics with fewer label lookups
  than its After middleware (the request cost is a tracked hot path, bench/middleware.py);
- a connection execute wrapper (Django's documented hook), installed on every connection
  when it opens, instead of django-prometheus's database backends, which would replace each
  ENGINE (and our SQLite/MySQL tuning with it).

Nothing is recorded while the category is not exported: the middlewares and the wrapper
check one in-process flag and pass the request or query straight on (the cost then is a
function call; docs/django-metrics.md has the figures). The flag is this process's copy of
the configuration in the database, followed by the metrics thread on every pass
(SIMPLETUNER_METRICS_FLUSH_SECONDS), by every scrape, and at once by a change made in this
process: another process starts or stops counting within one flush interval.

Unlike the `simpletuner_*` metrics (instance totals from the database, the same from any
process), these values live in this process's memory: a scrape of a process reports that
process's requests and queries since it started, and Prometheus tells processes apart by
their `instance` label (one target per process, as deploy/prometheus configures).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from timeit import default_timer
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpRequest, HttpResponseBase
from django_prometheus.db import metrics as db
from django_prometheus.middleware import Metrics, PrometheusBeforeMiddleware
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from cloudops.metrics.models import MetricsConfig
from cloudops.middleware import DualModeMiddleware, GetResponse
from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.metrics")

CATEGORY = "django"


class _Exported:
    """Whether this process records Django's metrics now (process plumbing: the setting
    itself is the MetricsConfig row; see the module docstring for how it is followed)."""

    enabled = False


def django_metrics_enabled() -> bool:
    return _Exported.enabled


def django_metrics_follow(config: MetricsConfig) -> None:
    """Record from now on if, and only if, `config` exports the `django` category."""
    _Exported.enabled = bool(config.prometheus_enabled and CATEGORY in config.prometheus_categories)


# django-prometheus's request metrics, in a registry of their own: nothing else in the
# process (a library using prometheus_client's global registry) reaches our scrape.
REGISTRY = CollectorRegistry(auto_describe=True)


class _Metrics(Metrics):
    """django-prometheus's request metrics, in REGISTRY, less those we do not record (their
    request and response sizes, charsets, AJAX and template counts: a cost on every request
    for little an operator watches; unrecorded, they would export made-up zeros)."""

    def register_metric(
        self, metric_cls: Any, name: str, documentation: str, labelnames: Any = (), **kwargs: Any
    ) -> Any:
        return metric_cls(name, documentation, labelnames=labelnames, registry=REGISTRY, **kwargs)

    def register(self) -> None:
        super().register()
        for unrecorded in (
            self.requests_ajax,
            self.requests_by_method,
            self.requests_by_transport,
            self.requests_body_bytes,
            self.requests_unknown_latency,
            self.requests_unknown_latency_before,  # our Before middleware always times
            self.responses_by_templatename,
            self.responses_body_bytes,
            self.responses_by_charset,
            self.responses_streaming,
        ):
            REGISTRY.unregister(unrecorded)


# Made here, at import (under the import lock), never by two threads at once: a second
# instance would register the same names in REGISTRY again, which raises.
METRICS = _Metrics.get_instance()


class _Before(PrometheusBeforeMiddleware):
    metrics_cls = _Metrics


def _quietly(hook: Callable[..., object], *args: Any) -> None:
    # Metrics never fail a request.
    try:
        hook(*args)
    except Exception as exc:
        logger.warning("could not record Django request metrics: %s: %s", type(exc).__name__, exc)


class DjangoMetricsBeforeMiddleware(DualModeMiddleware):
    """First in MIDDLEWARE: requests and their latency including every middleware
    (django-prometheus's PrometheusBeforeMiddleware's own code)."""

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)
        self.hooks = _Before(get_response)

    def sync_call(self, request: HttpRequest) -> HttpResponseBase:
        if not _Exported.enabled:
            return self.get_response(request)  # type: ignore[return-value]
        _quietly(self.hooks.process_request, request)
        response: HttpResponseBase = self.get_response(request)  # type: ignore[assignment]
        _quietly(self.hooks.process_response, request, response)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if not _Exported.enabled:
            return await self.get_response(request)  # type: ignore[misc,no-any-return]
        _quietly(self.hooks.process_request, request)
        response: HttpResponseBase = await self.get_response(request)  # type: ignore[misc]
        _quietly(self.hooks.process_response, request, response)
        return response


# Any other method a client sends shares one label (django-prometheus's spelling), so a
# client cannot make new series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"})
UNNAMED_VIEW = "<unnamed view>"


def _view(request: HttpRequest) -> str:
    """The URL pattern's name (or its view's dotted path); one label for unmatched paths."""
    match = request.resolver_match
    return (match.view_name or UNNAMED_VIEW) if match is not None else UNNAMED_VIEW


def _method(request: HttpRequest) -> str:
    return request.method if request.method in KNOWN_METHODS else "<invalid method>"  # type: ignore[return-value]


# prometheus_client's labels() validates and locks on every call (a few microseconds each);
# the series of a label combination never change, so they are looked up once. Bounded: views,
# methods, statuses and transports are all finite sets (see _view and _method).
@functools.lru_cache(maxsize=4096)
def _request_series(view: str, method: str, status: str, transport: str) -> tuple[Any, Any, Any, Any]:
    return (
        METRICS.requests_by_view_transport_method.labels(view, transport, method),
        METRICS.responses_by_status.labels(status),
        METRICS.responses_by_status_view_method.labels(status, view, method),
        METRICS.requests_latency_by_view_method.labels(view, method),
    )


class DjangoMetricsAfterMiddleware(DualModeMiddleware):
    """Last in MIDDLEWARE: per view and method, the latency of the view alone and the
    responses by status; the exceptions views raise. django-prometheus's
    PrometheusAfterMiddleware metrics: three counters and a histogram, their series looked up
    once, where its own makes twelve label lookups (see _Metrics for what is left out)."""

    def _record(self, request: HttpRequest, response: HttpResponseBase, started: float) -> None:
        transport = "https" if request.is_secure() else "http"
        by_view, by_status, by_status_view, latency = _request_series(
            _view(request), _method(request), str(response.status_code), transport
        )
        by_view.inc()
        by_status.inc()
        by_status_view.inc()
        latency.observe(default_timer() - started)

    def sync_call(self, request: HttpRequest) -> HttpResponseBase:
        if not _Exported.enabled:
            return self.get_response(request)  # type: ignore[return-value]
        started = default_timer()
        response: HttpResponseBase = self.get_response(request)  # type: ignore[assignment]
        _quietly(self._record, request, response, started)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if not _Exported.enabled:
            return await self.get_response(request)  # type: ignore[misc,no-any-return]
        started = default_timer()
        response: HttpResponseBase = await self.get_response(request)  # type: ignore[misc]
        _quietly(self._record, request, response, started)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        # Called by Django only when a view raised. The 500 that Django makes of it comes
        # back through this middleware and is counted as a response as well.
        if _Exported.enabled:
            METRICS.exceptions_by_type.labels(type(exception).__name__).inc()
            METRICS.exceptions_by_view.labels(_view(request)).inc()


def _count_query(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    """An execute wrapper: django-prometheus's query counters, as its database backends count."""
    if not _Exported.enabled:
        return execute(sql, params, many, context)
    connection = context["connection"]
    executed, executed_many, duration = _query_series(connection.alias, connection.vendor)
    statements = len(params) if many and hasattr(params, "__len__") else 1
    executed.inc(statements)
    if many:
        executed_many.inc(statements)
    started = default_timer()
    try:
        return execute(sql, params, many, context)
    except Exception as exc:
        db.errors_total.labels(connection.alias, connection.vendor, type(exc).__name__).inc()
        raise
    finally:
        duration.observe(default_timer() - started)


@functools.cache  # one entry per database alias (see _request_series)
def _query_series(alias: str, vendor: str) -> tuple[Any, Any, Any]:
    labels = (alias, vendor)
    return (
        db.execute_total.labels(*labels),
        db.execute_many_total.labels(*labels),
        db.query_duration_seconds.labels(*labels),
    )


def install_query_counter(sender: object, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """connection_created receiver: count the new connection and wrap its queries (once: a
    connection object that reconnects keeps its wrappers)."""
    if _Exported.enabled:
        db.connections_total.labels(connection.alias, connection.vendor).inc()
    if _count_query not in connection.execute_wrappers:
        # First, not last: `with connection.execute_wrapper(w):` pops the last wrapper when it
        # ends, which would be ours if this connection opened inside such a block.
        connection.execute_wrappers.insert(0, _count_query)


# The database metrics this module records. (django-prometheus's connection-error counter is
# left out: a failed connect sends no signal, so it would always read zero.)
_DB_METRICS = (
    db.connections_total,
    db.execute_total,
    db.execute_many_total,
    db.errors_total,
    db.query_duration_seconds,
)


def collect() -> Iterator[Metric]:
    """The `django` category's source: this process's request and database metrics."""
    for metric in (*REGISTRY.collect(), *(family for db_metric in _DB_METRICS for family in db_metric.collect())):
        yield _without_created(metric)


def _without_created(metric: Metric) -> Metric:
    # prometheus_client adds a `<name>_created` timestamp series to every counter and histogram
    # series; in the text format Prometheus stores them as series of their own, doubling the
    # category's count for a start time `rate()` does not need. (collect() builds new Metric
    # objects on every call, so changing this one changes nothing else.)
    metric.samples = [sample for sample in metric.samples if not sample.name.endswith("_created")]
    return metric
