"""Small helpers shared by the job tests."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from rest_framework.test import APIClient

from providers.models import Job

QUICK = {"max_train_steps": 1, "step_seconds": 0, "checkpoint_size_mb": 0}
# A bundled-trainer config that runs until cancelled (far longer than any test).
ENDLESS = {"max_train_steps": 100000, "step_seconds": 1}


def submit(
    client: APIClient, body: dict[str, Any] | None = None, *, path: str = "/api/cloud/jobs/submit", **headers: str
):  # type: ignore[no-untyped-def]
    payload = {"provider": "local", "config": QUICK} if body is None else body
    return client.post(path, data=json.dumps(payload), content_type="application/json", headers=headers)


def python_command(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def wait_for_status(job_id: str, *statuses: str, timeout: float = 30) -> Job:
    """Poll the database until the job reaches one of `statuses` (fails after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        job = Job.objects.get(pk=job_id)
        if job.status in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} is {job.status}, not {statuses}, after {timeout}s: {job.error}")
        time.sleep(0.05)


def race(code: str, count: int, gate_dir: Path, env: dict[str, str] | None = None) -> list[str]:
    """Run `code` in `count` Django processes that all start it at the same moment (each
    signals it is ready, then waits for a shared gate file), and return their stdout."""
    import textwrap

    from tests.processes import spawn_django, wait_all

    gate = gate_dir / "gate"
    prelude = f"""
        import os, pathlib, time
        pathlib.Path({str(gate_dir)!r}, f"ready-{{os.getpid()}}").touch()
        while not pathlib.Path({str(gate)!r}).exists():
            time.sleep(0.005)
    """
    procs = [spawn_django(textwrap.dedent(prelude) + textwrap.dedent(code), env=env) for _ in range(count)]
    deadline = time.monotonic() + 60
    while len(list(gate_dir.glob("ready-*"))) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    gate.touch()
    return wait_all(procs)
