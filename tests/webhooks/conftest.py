"""Fixtures of the webhook tests; the deliveries and jobs they post for are in deliveries.py."""

from __future__ import annotations

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    """The secret cache and re-fetch limiter live in the Django cache (locmem here)."""
    cache.clear()
