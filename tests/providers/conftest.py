"""Fixtures of the providers and jobs tests."""

from __future__ import annotations

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.fakes.replicate import replicate, replicate_server  # noqa: F401 - fixtures
from tests.providers.cleanup import local_jobs_dir  # noqa: F401 - an autouse fixture


@pytest.fixture(autouse=True)
def fast_retries(settings: SettingsWrapper) -> None:
    """Real retries with real sleeps, only shorter."""
    settings.SIMPLETUNER_HTTP_BACKOFF = 0.01
    settings.SIMPLETUNER_HTTP_BACKOFF_MAX = 0.05
