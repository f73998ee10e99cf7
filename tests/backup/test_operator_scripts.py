"""The documented operator scripts, run for real against a separate installation.

The guide's cron script is taken from docs/backup.md, where it is copied verbatim from the guide,
and the SQLite recipes from docs/troubleshooting.md.
Its one line that names a machine path, `BACKUP_DIR="/backup/simpletuner"`, points at a
temporary directory instead: a test must never write (or, through the script's `find
-delete`, delete) anything in a real /backup. Everything else runs as written, with HOME
pointing at the installation, so `DB_PATH` is the guide's default path.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.backup.conftest import sqlite_only
from tests.backup.instance import Instance
from tests.processes import ROOT
from tests.services import require_tool

# These never touch the test database; they run once, in the SQLite pass.
pytestmark = [sqlite_only, pytest.mark.slow]

CRON_HEADER = "# /etc/cron.daily/simpletuner-backup"
BACKUP_DIR_LINE = 'BACKUP_DIR="/backup/simpletuner"'


def doc_block(page: str, *containing: str) -> str:
    """The first ```bash block of docs/<page> that contains every string given."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "docs" / page).read_text(), flags=re.S)
    matches = [block for block in blocks if all(text in block for text in containing)]
    assert matches, f"no bash block in docs/{page} contains {containing!r}"
    return matches[0]


def guide_cron_script() -> str:
    script = doc_block("backup.md", CRON_HEADER, "sqlite3")
    assert script.startswith("#!/bin/bash\n" + CRON_HEADER)
    assert script.count(BACKUP_DIR_LINE) == 1
    return script


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    require_tool("sqlite3")
    inst = Instance(tmp_path / "home")
    inst.manage("migrate", "--noinput")
    inst.add_jobs("first", "second", "third")
    return inst


def _aged(path: Path, days: float) -> None:
    when = time.time() - days * 86400
    os.utime(path, (when, when))


def _earlier_run(instance: Instance, directory: Path, *, days: float) -> Path:
    made = Path(instance.manage("backup", str(directory), "--gzip").stdout.splitlines()[-1])
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(time.time() - days * 86400))
    earlier = made.rename(made.with_name(f"jobs_backup_{stamp}.db.gz"))
    _aged(earlier, days)
    return earlier


def test_the_guides_cron_script_backs_up_our_database_and_restore_accepts_the_result(
    instance: Instance, tmp_path: Path
) -> None:
    backup_dir = tmp_path / "backup" / "simpletuner"
    backup_dir.mkdir(parents=True)
    # Earlier runs: ours, by `manage.py backup`, one 40 days old and one from yesterday (named
    # for those days, so they cannot collide with the script's name for this second).
    old = _earlier_run(instance, backup_dir, days=40)
    recent = _earlier_run(instance, backup_dir, days=1)
    script = guide_cron_script().replace(BACKUP_DIR_LINE, f'BACKUP_DIR="{backup_dir}"')

    done = subprocess.run(
        ["bash", "-c", script], env={**instance.env(), "PATH": os.environ["PATH"]}, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    made = Path(done.stdout.strip().removeprefix("Backup created: "))
    assert made.parent == backup_dir and re.fullmatch(r"jobs_backup_\d{8}_\d{6}\.db\.gz", made.name)
    # The script's `find -mtime +30` retention matches our names.
    assert not old.exists()
    assert sorted(p.name for p in backup_dir.iterdir()) == sorted([recent.name, made.name])
    listed = instance.manage("list_backups", "--dir", str(backup_dir)).stdout
    assert made.name in listed and recent.name in listed
    instance.add_jobs("after the backup")

    restored = instance.manage("restore", str(made))

    assert f"from {made} (3 jobs" in restored.stdout.splitlines()[-1]
    assert instance.job_names() == ["first", "second", "third"]
    assert "OK:" in instance.manage("audit_verify").stdout


def test_our_backup_command_in_a_cron_script_exits_non_zero_when_the_backup_fails(
    instance: Instance, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the backup directory should be")

    done = instance.manage("backup", str(blocked / "sub"), "--gzip", check=False)

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"cannot write a backup to {blocked / 'sub'}" in done.stderr


def _cli_has_dbpage() -> bool:
    probe = subprocess.run(
        ["sqlite3", ":memory:", "SELECT count(*) FROM sqlite_dbpage"], capture_output=True, text=True
    )
    return probe.returncode == 0


def test_the_troubleshooting_recovery_recipes_give_a_database_restore_accepts(
    instance: Instance, tmp_path: Path
) -> None:
    recover = doc_block("troubleshooting.md", '".recover"')
    commands = [line for line in recover.splitlines() if line.startswith("sqlite3")]
    assert commands == [
        'sqlite3 ~/.simpletuner/config/cloud/jobs.db "PRAGMA integrity_check"',
        'sqlite3 ~/.simpletuner/config/cloud/jobs.db ".recover" | sqlite3 jobs_recovered.db',
    ]
    dump = doc_block("troubleshooting.md", '".dump"').strip()
    assert dump == 'sqlite3 ~/.simpletuner/config/cloud/jobs.db ".dump" | sqlite3 jobs_recovered.db'
    env = {**instance.env(), "PATH": os.environ["PATH"]}

    def run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        cwd.mkdir()
        return subprocess.run(["bash", "-c", command], env=env, cwd=cwd, capture_output=True, text=True)

    assert run(commands[0], tmp_path / "check").stdout.strip() == "ok"
    recovered = run(commands[1], tmp_path / "recover")
    dumped = run(dump, tmp_path / "dump")
    instance.add_jobs("after the recovery copies")

    if _cli_has_dbpage():
        instance.manage("restore", str(tmp_path / "recover" / "jobs_recovered.db"))
        assert instance.job_names() == ["first", "second", "third"]
    else:
        # What docs/troubleshooting.md says about shells built without sqlite_dbpage (Debian 12's).
        assert "SQL logic error" in recovered.stderr
        refused = instance.manage("restore", str(tmp_path / "recover" / "jobs_recovered.db"), check=False)
        assert refused.returncode == 1 and "is not a SQLite database" in refused.stderr
    assert dumped.returncode == 0, dumped.stderr
    instance.manage("restore", str(tmp_path / "dump" / "jobs_recovered.db"))
    assert instance.job_names() == ["first", "second", "third"]
    assert "OK:" in instance.manage("audit_verify").stdout


def test_the_troubleshooting_checkpoint_empties_the_wal(instance: Instance) -> None:
    recipe = doc_block("troubleshooting.md", "wal_checkpoint(TRUNCATE)")
    (command,) = [line for line in recipe.splitlines() if line.startswith("sqlite3")]
    env = {**instance.env(), "PATH": os.environ["PATH"]}

    done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True)

    assert done.stdout.strip() == "0|0|0"
    wal = instance.db.with_name("jobs.db-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_a_database_whose_header_is_destroyed_is_restored_and_kept_as_it_was(instance: Instance) -> None:
    backup = Path(instance.manage("backup").stdout.splitlines()[-1])
    instance.add_jobs("lost")
    damaged = b"\x00garbage" * 16 + instance.db.read_bytes()[128:]
    instance.db.write_bytes(damaged)
    dbinfo = instance.manage("dbinfo", check=False)
    assert dbinfo.returncode == 1 and "Traceback" not in dbinfo.stderr
    assert "the database cannot be read: file is not a database" in dbinfo.stderr

    out = instance.manage("restore", str(backup)).stdout

    (safety,) = instance.backups.glob("jobs_pre_restore_*.db")
    assert f"Safety copy of the replaced database: {safety}" in out
    assert safety.read_bytes() == damaged
    assert instance.job_names() == ["first", "second", "third"]
    assert "OK:" in instance.manage("audit_verify").stdout


def size_of(path: Path) -> int:
    """0 for a file that is not there (the WAL comes and goes with checkpoints)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def test_a_restore_killed_mid_swap_leaves_the_old_or_the_new_database_never_a_mix(instance: Instance) -> None:
    # A backup big enough (about 30 MB) that the swap is still writing when the WAL passes 4 MB.
    instance.add_jobs(many=("big-", 10000), log_bytes=3000)
    big = Path(instance.manage("backup").stdout.splitlines()[-1])
    instance.python("from providers.models import Job\nJob.objects.filter(name__startswith='big-').delete()")
    instance.manage("dbinfo")  # checkpoints, so the WAL starts empty
    old_names = instance.job_names()
    wal = instance.db.with_name("jobs.db-wal")

    proc = subprocess.Popen(
        [sys.executable, "manage.py", "restore", str(big)],
        cwd=ROOT,
        env=instance.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while size_of(wal) <= 4 * 1024 * 1024 and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    proc.kill()
    proc.wait()

    names = instance.job_names()
    assert names == old_names or len(names) == 10000 + len(old_names)
    integrity = subprocess.run(["sqlite3", str(instance.db), "PRAGMA integrity_check"], capture_output=True, text=True)
    assert integrity.stdout.strip() == "ok"
    # The next restore removes the killed one's private copy and completes.
    instance.manage("restore", str(big))
    assert len(instance.job_names()) == 10000 + len(old_names)
    assert not list(instance.db.parent.glob(".jobs.db.restore.tmp-*"))
    assert "OK:" in instance.manage("audit_verify").stdout
