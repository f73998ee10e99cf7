"""Stop every process a test's local jobs started, so none outlives the test."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


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
