"""Restore refuses while a server (or `sync_jobs --loop`) uses the database, unless forced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import AbstractUser
from django.core.management import CommandError, call_command

from audit.models import AuditEntry
from cloudops import audit_events as events
from cloudops.backup import JobStore, RestoreRefused
from cloudops.backup.lock import (
    exclusive_serving_lock,
    hold_serving_lock,
    lock_holders,
    lock_waiters,
    release_serving_lock,
    serving_lock_path,
)
from providers.models import Job
from tests.backup.conftest import db_state, live_db, sqlite_only
from tests.conftest import client_for
from tests.processes import ROOT, django_env, spawn_django, wait_all
from tests.server.live import free_port, running

pytestmark = [sqlite_only, pytest.mark.django_db(transaction=True), pytest.mark.slow]


def wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def job_total(base: str, key: str) -> int:
    response = httpx.get(f"{base}/api/cloud/jobs", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["total"]


def test_restore_is_refused_while_a_server_runs_and_force_restores_under_it(
    backup_dir: Path, olivia: AbstractUser, make_jobs: Callable[..., list[str]], tmp_path: Path
) -> None:
    key = client_for(olivia).raw_key  # type: ignore[attr-defined]
    kept = set(make_jobs(2))
    backup = JobStore().backup()
    make_jobs(3, name="later")
    port = free_port()
    env = django_env(SIMPLETUNER_BACKGROUND_SYNC="false")
    with running(
        [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env,
        port,
        tmp_path / "server.log",
    ) as base:
        assert job_total(base, key) == 5
        (server_pid,) = lock_holders(serving_lock_path(live_db()))
        before = db_state(backup_dir)

        with pytest.raises(CommandError, match=rf"a cloudops server .* is using .* \(pid {server_pid}\).*--force"):
            call_command("restore", str(backup), stdout=StringIO())
        assert db_state(backup_dir) == before

        err = StringIO()
        call_command("restore", str(backup), "--force", stdout=StringIO(), stderr=err)

        assert f"restored under running server processes (pid {server_pid})" in err.getvalue()
        assert set(Job.objects.values_list("pk", flat=True)) == kept
        # The running server sees the restored database at once: no restart, no stale file.
        assert job_total(base, key) == 2
    entry = AuditEntry.objects.order_by("-sequence").first()
    assert entry is not None and entry.event_type == events.BACKUP_RESTORED
    assert entry.details["forced"] is True and entry.details["server_pids"] == [server_pid]
    call_command("audit_verify", stdout=StringIO())


def test_a_server_starting_during_a_restore_waits_for_it_before_serving(backup_dir: Path) -> None:
    code = """
        import cloudops.asgi
        print("serving")
    """
    with exclusive_serving_lock(live_db()) as lock:
        assert lock.acquired
        proc = spawn_django(code, env=django_env(SIMPLETUNER_BACKGROUND_SYNC="false"))
        wait_until(lambda: proc.pid in lock_waiters(lock.path))
        assert proc.poll() is None
    (out,) = wait_all([proc])
    assert out.strip() == "serving"


def test_sync_jobs_loop_counts_as_a_server(backup_dir: Path, make_jobs: Callable[..., list[str]]) -> None:
    make_jobs(1)
    backup = JobStore().backup()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "sync_jobs", "--loop", "--interval", "3600"],
        cwd=ROOT,
        env=django_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: proc.pid in lock_holders(serving_lock_path(live_db())))
        with pytest.raises(RestoreRefused, match=f"pid {proc.pid}") as refused:
            JobStore().restore(backup)
        assert refused.value.reason == "server_running"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert JobStore().restore(backup) is True


def test_a_server_killed_with_sigkill_leaves_no_stale_lock(
    backup_dir: Path, make_jobs: Callable[..., list[str]]
) -> None:
    make_jobs(1)
    backup = JobStore().backup()
    proc = spawn_django(
        "import time, cloudops.asgi\ntime.sleep(600)", env=django_env(SIMPLETUNER_BACKGROUND_SYNC="false")
    )
    wait_until(lambda: proc.pid in lock_holders(serving_lock_path(live_db())))

    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)

    assert JobStore().restore(backup) is True


def test_the_serving_lock_of_this_very_process_does_not_block_its_own_restore(
    backup_dir: Path, make_jobs: Callable[..., list[str]]
) -> None:
    kept = set(make_jobs(1))
    backup = JobStore().backup()
    make_jobs(1, name="later")
    hold_serving_lock(live_db())
    try:
        assert JobStore().restore(backup) is True
        # ...and it holds its shared lock again afterwards, so other restores still see it.
        with exclusive_serving_lock(live_db()) as other:
            pass
        probe = spawn_django(
            f"""
            import fcntl, os
            fd = os.open({str(serving_lock_path(live_db()))!r}, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                print("free")
            except BlockingIOError:
                print("held")
            """
        )
        (out,) = wait_all([probe])
    finally:
        release_serving_lock(live_db())
    assert other.acquired  # this process's own lock never counts
    assert out.strip() == "held"
    assert set(Job.objects.values_list("pk", flat=True)) == kept
