"""Fixtures of the providers and jobs tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper


@pytest.fixture(autouse=True)
def own_local_jobs_dir(local_jobs_dir: Path) -> None:
    """Every test here runs its local jobs in a directory of its own (tests/providers/cleanup.py)."""


@pytest.fixture(autouse=True)
def fast_retries(settings: SettingsWrapper) -> None:
    """Real retries with real sleeps, only shorter."""
    settings.SIMPLETUNER_HTTP_BACKOFF = 0.01
    settings.SIMPLETUNER_HTTP_BACKOFF_MAX = 0.05
