"""Stop every process a test's local jobs started, so none outlives the test.

The fixtures are registered for every test directory by tests/conftest.py; the directories
whose every test needs its own jobs directory use `local_jobs_dir` from an autouse fixture."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
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
    join_job_watchers(deadline - time.monotonic())


def join_job_watchers(timeout: float) -> None:
    """Wait for this process's job watchers (providers/sync.py `job_watch`) to record the ends of
    the processes just killed: one still writing when the test database is flushed leaves an
    audit entry behind the reset head, and the next test's first audit append refuses."""
    deadline = time.monotonic() + max(timeout, 1.0)
    for thread in threading.enumerate():
        if thread.name.startswith("job-watch-"):
            thread.join(max(deadline - time.monotonic(), 0))


@pytest.fixture
def local_jobs_dir(settings: SettingsWrapper, tmp_path: Path) -> Iterator[Path]:
    """Each test's local jobs live in its own directory; their processes die with the test."""
    jobs = tmp_path / "jobs"
    settings.SIMPLETUNER_LOCAL_JOBS_DIR = jobs
    yield jobs
    kill_processes_under(jobs)


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The local jobs directory of a module's server processes; their jobs die with the module."""
    path = tmp_path_factory.mktemp("jobs")
    yield path
    kill_processes_under(path)
