"""The guide's metric categories and configuration templates (names are a contract)."""

from __future__ import annotations

from collections.abc import Iterable

# In the documented order (the operations guide's), which is also the order of the scrape output.
# `full` exports them all, `django` included.
CATEGORIES: dict[str, str] = {
    "jobs": "Job counts, status, queue depth, costs",
    "http": "Request counts, errors, latency",
    "rate_limits": "Rate limit violations",
    "approvals": "Approval workflow metrics",
    "audit": "Audit log activity",
    "health": "Server uptime, component health",
    "circuit_breakers": "Provider circuit breaker state",
    "provider": "Cost limits, credit balance",
    "notifications": "Outbound notifications: sent, failed attempts, queue depth",
    # Not in the guide: django-prometheus's django_* metrics, per server process
    # (cloudops/metrics/django_process.py). Last, after the guide's categories.
    "django": "Django's own, per process: request latency per view, responses, database queries and errors",
}

TEMPLATES: dict[str, dict[str, object]] = {
    "minimal": {"categories": ["jobs"], "description": "Lightweight job monitoring"},
    "standard": {"categories": ["jobs", "http", "health"], "description": "Recommended default"},
    "security": {
        "categories": ["jobs", "http", "rate_limits", "audit", "approvals"],
        "description": "Security monitoring",
    },
    "full": {"categories": list(CATEGORIES), "description": "Complete observability"},
}

DEFAULT_CATEGORIES: list[str] = ["jobs", "http", "health"]


class UnknownCategory(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown category {name!r} (known: {', '.join(CATEGORIES)})")
        self.name = name


def normalize_categories(names: Iterable[str]) -> list[str]:
    """Known categories in canonical order, without duplicates; raises UnknownCategory."""
    wanted = set()
    for name in names:
        if name not in CATEGORIES:
            raise UnknownCategory(name)
        wanted.add(name)
    return [name for name in CATEGORIES if name in wanted]


def default_categories() -> list[str]:
    return list(DEFAULT_CATEGORIES)
