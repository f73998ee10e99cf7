"""System checks: every category's sources import and are callable (at start-up, not at
the first scrape)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register
from django.utils.module_loading import import_string

from cloudops.metrics.categories import CATEGORIES


@register()
def check_metrics_sources(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors = []
    sources = getattr(settings, "METRICS_SOURCES", {})
    for category in sorted(set(sources) - set(CATEGORIES)):
        errors.append(Error(f"METRICS_SOURCES names unknown category {category!r}", id="metrics.E001"))
    for category, paths in sources.items():
        for path in paths:
            try:
                source = import_string(path)
            except ImportError as exc:
                errors.append(Error(f"METRICS_SOURCES[{category!r}]: cannot import {path}: {exc}", id="metrics.E002"))
                continue
            if not callable(source):
                errors.append(Error(f"METRICS_SOURCES[{category!r}]: {path} is not callable", id="metrics.E003"))
    return errors
