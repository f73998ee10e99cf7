"""Rendering the configured categories in the Prometheus text format.

prometheus_client does the format (HELP/TYPE lines, label escaping, number formatting):
each scrape builds a fresh CollectorRegistry holding one collector that asks the sources of
the requested categories for their metric families. Nothing is kept in module globals, so
every value comes from the database or the shared cache and agrees across processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from cloudops.metrics.categories import CATEGORIES
from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.metrics")

Source = Callable[[], Iterable[Metric]]
# The text format generate_latest writes. Spelled out because newer prometheus_client versions
# advertise 1.0.0 in CONTENT_TYPE_LATEST, which Prometheus servers before 3.0 do not know.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@cache
def _import(path: str) -> Source:
    return import_string(path)


def category_sources(category: str) -> list[Source]:
    return [_import(path) for path in settings.METRICS_SOURCES.get(category, [])]


class CategoryCollector(Collector):
    """Yields the metric families of `categories`, in the order of CATEGORIES."""

    def __init__(self, categories: Sequence[str]) -> None:
        self.categories = [name for name in CATEGORIES if name in categories]

    def collect(self) -> Iterator[Metric]:
        for category in self.categories:
            for source in category_sources(category):
                yield from _safely(category, source)


def _safely(category: str, source: Source) -> list[Metric]:
    # One broken source must not take the whole scrape down: the others still report, and
    # the failure is logged with its category.
    try:
        return list(source())
    except Exception:
        logger.exception("metrics source failed", extra={"category": category, "source": source.__module__})
        return []


def render(categories: Sequence[str]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CategoryCollector(categories))
    return generate_latest(registry)


def metric_count(text: bytes) -> int:
    """Samples in a rendered exposition (lines that are not comments)."""
    return sum(1 for line in text.decode().splitlines() if line and not line.startswith("#"))
