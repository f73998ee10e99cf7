"""The store servers' programs skip the tests on a laptop without them, and fail them in CI."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.services import require_tool


def test_a_missing_tool_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDOPS_REQUIRE_SERVICES", raising=False)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(pytest.skip.Exception, match="no-such-tool is not installed"):
        require_tool("no-such-tool")


def test_a_missing_tool_fails_when_services_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDOPS_REQUIRE_SERVICES", "1")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(pytest.fail.Exception, match=r"no-such-tool is not installed.*\[CLOUDOPS_REQUIRE_SERVICES=1\]"):
        require_tool("no-such-tool")


@pytest.mark.services
def test_the_installed_tools_run() -> None:
    bao = subprocess.run([require_tool("bao"), "version"], capture_output=True, text=True, timeout=60)
    assert bao.returncode == 0 and bao.stdout.startswith("OpenBao v"), bao.stdout + bao.stderr
    assert os.access(require_tool("moto_server"), os.X_OK)
