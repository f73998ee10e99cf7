"""Stop every process a test's local jobs started, so none outlives the test."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper


def processes_under(directory: Path) -> list[int]:
    """Pids whose working directory is inside `directory` (runners and their commands)."""
    root = str(directory.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == root or cwd.startswith(root + os.sep):
            found.append(int(entry.name))
    return found


def kill_processes_under(directory: Path, timeout: float = 5) -> None:
    if not directory.exists():
        return
    deadline = time.monotonic() + timeout
    while (pids := processes_under(directory)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def local_jobs_dir(settings: SettingsWrapper, tmp_path: Path) -> Iterator[Path]:
    """Each test's local jobs live in its own directory; their processes die with the test.
    (Autouse wherever a conftest imports it.)"""
    jobs = tmp_path / "jobs"
    settings.SIMPLETUNER_LOCAL_JOBS_DIR = jobs
    yield jobs
    kill_processes_under(jobs)
