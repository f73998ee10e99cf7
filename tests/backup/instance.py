"""A separate cloudops installation in a temporary HOME, driven through `manage.py` as an operator would.

Its database is the embedded default, `$HOME/.simpletuner/config/cloud/jobs.db`, so the guide's
scripts run against it as written, and tests may damage or kill it without touching the test
database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.processes import ROOT

# Variables of the test run that must not leak into the installation.
_TEST_ONLY = {
    "DATABASE_URL",
    "REDIS_URL",
    "DJANGO_SETTINGS_MODULE",
    "SIMPLETUNER_HOME",
    "CLOUDOPS_TEST_HOME_SET",
    "CLOUDOPS_TEST_DB_NAME",
}


class Instance:
    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)

    @property
    def db(self) -> Path:
        return self.home / ".simpletuner" / "config" / "cloud" / "jobs.db"

    @property
    def backups(self) -> Path:
        return self.home / ".simpletuner" / "backups"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _TEST_ONLY}
        env.update(HOME=str(self.home), DJANGO_SETTINGS_MODULE="cloudops.settings", SIMPLETUNER_LOG_FORMAT="text")
        return env

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=300
        )
        if check and done.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def python(self, code: str) -> str:
        script = "import django\ndjango.setup()\n" + textwrap.dedent(code)
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def job_names(self) -> list[str]:
        out = self.python(
            "from providers.models import Job\nprint('\\n'.join(sorted(Job.objects.values_list('name', flat=True))))"
        )
        return [line for line in out.splitlines() if line]

    def add_jobs(self, *names: str, many: tuple[str, int] | None = None, log_bytes: int = 0) -> None:
        """Jobs with these names (and `many` = (prefix, count) more), plus one audit entry."""
        self.python(
            f"""
            from django.contrib.auth import get_user_model
            from cloudops import audit_events as events
            from audit.services import audit_record
            from providers.models import Job
            owner, _ = get_user_model().objects.get_or_create(username="ops")
            prefix, count = {many or ("", 0)!r}
            names = {list(names)!r} + [f"{{prefix}}{{i:05d}}" for i in range(count)]
            Job.objects.bulk_create(
                [Job(owner=owner, provider="local", name=name, logs="x" * {log_bytes}) for name in names],
                batch_size=500,
            )
            audit_record(event_type=events.JOB_SUBMITTED, target_type="jobs", target_id=str(len(names)))
            """
        )
