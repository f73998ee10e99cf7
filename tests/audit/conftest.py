"""Audit tests run with an explicit key from the secrets chain (the environment), so a test
can swap in a wrong key; the generated-key path has its own tests in test_audit_health.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.utils import timezone

TEST_KEY = "test-audit-key-" + "0123456789abcdef" * 3


@pytest.fixture(autouse=True)
def audit_key_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SIMPLETUNER_AUDIT_KEY", TEST_KEY)
    return TEST_KEY


T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """timezone.now() returns clock[0] (T0 at first); tests move it."""
    now = [T0]
    monkeypatch.setattr(timezone, "now", lambda: now[0])
    return now
