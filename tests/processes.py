"""Run Django code in separate OS processes against the test database.

Several server processes share one database in production; these helpers let a test do
the same (with the `transactional_db` fixture, so rows are committed and visible).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def current_database_url() -> str:
    """A DATABASE_URL naming the database this test is using right now."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    scheme = {"postgresql": "postgres", "mysql": "mysql"}[connection.vendor]
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    return f"{scheme}://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or ''}/{s['NAME']}"


def django_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "cloudops.settings", "DATABASE_URL": current_database_url()}
    env.update(extra)
    return env


def spawn_django(code: str, *, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start `code` in a new interpreter after django.setup(); read its stdout when done."""
    script = "import django\ndjango.setup()\n" + textwrap.dedent(code)
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env or django_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_all(procs: list[subprocess.Popen[str]], timeout: float = 120) -> list[str]:
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"worker failed ({proc.returncode}):\n{err}"
        outputs.append(out)
    return outputs


def in_forked_child(work: Callable[[], bytes], timeout: float = 60) -> bytes:
    """Run `work` in a fork() of this process and return what it returned (at most 4 KiB).

    For state that a fork must reset (threads, descriptor flags, resource limits). The child
    runs no pytest code after `work`; the test fails if it raises, exits otherwise, or does not
    answer within `timeout` seconds (then it is killed).
    """
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() of a process with threads
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            os.write(write_end, work())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], timeout)
        answer = os.read(read_end, 4096) if ready else b""
    finally:
        os.close(read_end)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    assert ready, f"the forked child did not answer within {timeout} s"
    assert os.waitstatus_to_exitcode(status) == 0, "the forked child failed"
    return answer
