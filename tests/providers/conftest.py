"""Fixtures of the providers and jobs tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from providers.config import provider_config_get
from tests.fakes.replicate import FakeReplicate, replicate_server  # noqa: F401 - a fixture
from tests.providers.cleanup import kill_processes_under


@pytest.fixture(autouse=True)
def fast_retries(settings: SettingsWrapper) -> None:
    """Real retries with real sleeps, only shorter."""
    settings.SIMPLETUNER_HTTP_BACKOFF = 0.01
    settings.SIMPLETUNER_HTTP_BACKOFF_MAX = 0.05


@pytest.fixture(autouse=True)
def local_jobs_dir(settings: SettingsWrapper, tmp_path: Path) -> Iterator[Path]:
    """Each test's local jobs live in its own directory; their processes die with the test."""
    jobs = tmp_path / "jobs"
    settings.SIMPLETUNER_LOCAL_JOBS_DIR = jobs
    yield jobs
    kill_processes_under(jobs)


@pytest.fixture
def replicate(
    replicate_server: FakeReplicate,  # noqa: F811
    settings: SettingsWrapper,
    monkeypatch: pytest.MonkeyPatch,
    db: None,
) -> FakeReplicate:
    """The replicate provider enabled and pointed at a running Replicate-compatible server."""
    settings.REPLICATE_API_BASE_URL = replicate_server.base_url
    monkeypatch.setenv("REPLICATE_API_TOKEN", replicate_server.token)
    config = provider_config_get("replicate")
    config.enabled = True
    config.save()
    return replicate_server
