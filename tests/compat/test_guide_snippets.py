"""The guide's Python snippets run as written, through the `simpletuner` compatibility package.

Each runs in its own interpreter against a separate SQLite installation (tests.compat.guide),
so these run once, in the SQLite pass: the backup and restore snippets are SQLite's by nature,
and the others never touch the test database. Paths that name a machine's directories
(/backup, /var/log) point into the test's temporary directory; nothing else is changed.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from django.db import connection

from tests.backup.instance import Instance
from tests.compat.guide import page_block, replace_once, run_script

sqlite_pass_only = pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="the snippets run against their own SQLite installation in a temporary HOME, not the suite's "
    "database: once, in the SQLite pass (the backup snippets are SQLite's by nature)",
)
pytestmark = [sqlite_pass_only, pytest.mark.slow]


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    inst = Instance(tmp_path / "home")
    inst.manage("migrate", "--noinput")
    inst.add_jobs("first", "second", "third")
    return inst


def test_the_backup_snippet_writes_backups_lists_them_and_reports_the_database(
    instance: Instance, tmp_path: Path
) -> None:
    custom = tmp_path / "backup" / "custom_backup.db"
    custom.parent.mkdir()
    snippet = page_block("store.backup()", "get_database_info")
    out = run_script(instance, replace_once(snippet, "/backup/custom_backup.db", str(custom)), tmp_path / "cron").stdout

    made = re.search(r"^Backup created: (.+)$", out, flags=re.M)
    assert made, out
    timestamped = Path(made.group(1))
    assert timestamped.parent == instance.backups and re.fullmatch(r"jobs_backup_\d{8}_\d{6}\.db", timestamped.name)
    assert timestamped.stat().st_size > 0 and custom.stat().st_size > 0
    assert re.search(rf"^  {re.escape(timestamped.name)}: \d+\.\d KB$", out, flags=re.M), out
    assert re.search(r"^Database: [\d.]+ MB, 3 jobs$", out, flags=re.M), out
    # The backups are real copies of the database: another installation restored from one has the jobs.
    assert "providers_job" in instance.python(
        f'import sqlite3; print([r[0] for r in sqlite3.connect({str(custom)!r}).execute("SELECT name FROM sqlite_master")])'
    )


def test_the_restore_snippet_puts_back_the_database_of_the_backup(instance: Instance, tmp_path: Path) -> None:
    backup = Path(instance.manage("backup", str(tmp_path / "backup")).stdout.splitlines()[-1])
    instance.add_jobs("after-the-backup")
    snippet = page_block("store.restore(")
    code = replace_once(snippet, "/backup/jobs_backup_20240115_103000.db", str(backup)) + "print(success)\n"
    assert run_script(instance, code, tmp_path / "ops").stdout.splitlines()[-1] == "True"
    assert instance.job_names() == ["first", "second", "third"]


def test_the_limiter_snippets_count_in_the_database_and_refuse_past_the_limit(
    instance: Instance, tmp_path: Path
) -> None:
    # The guide's snippets use `await` at the top level: they run inside an async function.
    body = page_block("get_rate_limiter(", "limiter.track(") + page_block("limiter.get_usage(")
    then = """
        for _ in range(98):
            assert await limiter.check("user:123")
        print("101st allowed:", await limiter.check("user:123"))
        async with limiter.track("user:123") as allowed:
            print("tracked allowed:", allowed)
        print("other key allowed:", await limiter.check("user:456"))
    """
    code = (
        "import asyncio\n\n\nasync def main():\n"
        + textwrap.indent(body + textwrap.dedent(then), "    ")
        + "\n\nasyncio.run(main())\n"
    )
    out = run_script(instance, code, tmp_path / "ops").stdout
    assert "Requests in window: 2/100" in out  # the check and the tracked request
    seconds = re.search(r"Window resets in: (\d+)s", out)
    assert seconds and 1 <= int(seconds.group(1)) <= 60, out
    assert "101st allowed: False" in out and "tracked allowed: False" in out and "other key allowed: True" in out
    # The counts are in the installation's database, where every server process sees them.
    assert "api:user:123" in instance.python(
        "from cloudops.ratelimit.models import RateLimitBucket\n"
        "print(list(RateLimitBucket.objects.values_list('key', flat=True)))"
    )


def test_the_presets_are_the_middlewares_limiters_with_the_guides_limits(instance: Instance, tmp_path: Path) -> None:
    then = """
        import asyncio
        from cloudops.ratelimit import limiter

        assert webhook_rate_limiter is limiter.webhook_rate_limiter and s3_rate_limiter is limiter.s3_rate_limiter


        async def admitted(preset, key):
            return [await preset.check(key) for _ in range(preset.max_requests + 1)].count(True)

        print("webhook:", asyncio.run(admitted(webhook_rate_limiter, "203.0.113.5")))
        print("s3:", asyncio.run(admitted(s3_rate_limiter, "203.0.113.5")))
    """
    code = page_block("webhook_rate_limiter,  #") + textwrap.dedent(then)
    out = run_script(instance, code, tmp_path / "ops").stdout
    assert "webhook: 100" in out and "s3: 50" in out


def test_the_logging_snippet_writes_json_lines_with_the_context_fields_without_django(
    instance: Instance, tmp_path: Path
) -> None:
    log_file = tmp_path / "log" / "cloud.log"
    log_file.parent.mkdir()
    snippet = page_block("configure_structured_logging(")
    done = run_script(
        instance, replace_once(snippet, "/var/log/simpletuner/cloud.log", str(log_file)), tmp_path / "ops"
    )
    lines = log_file.read_text().splitlines()
    assert len(lines) == 1 and done.stderr.strip() == lines[0]
    entry = json.loads(lines[0])
    assert entry["level"] == "INFO" and entry["logger"] == "mymodule" and entry["message"] == "Processing job"
    assert entry["extra"] == {"job_id": "abc123", "provider": "..."}
    assert entry["source"] == {"file": "script.py", "line": entry["source"]["line"], "function": "<module>"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["timestamp"])
    assert set(entry) == set(json.loads(page_block('"logger": "mymodule"', lang="json")))
    # Logging needs no Django: the script neither set it up nor created anything in the home.
    assert sorted(p.name for p in instance.home.iterdir()) == [".simpletuner"]  # migrate's, from the fixture


def test_the_settings_equivalent_of_add_middleware_applies_the_guides_rules(instance: Instance, tmp_path: Path) -> None:
    settings_dir = tmp_path / "site"
    settings_dir.mkdir()
    (settings_dir / "mysettings.py").write_text(page_block("# mysettings.py"))
    client_code = """
        import os
        os.environ["DJANGO_SETTINGS_MODULE"] = "mysettings"
        from simpletuner.simpletuner_sdk.server.middleware.security_middleware import RateLimitMiddleware
        from django.conf import settings
        from django.test import Client

        assert settings.MIDDLEWARE.count("cloudops.ratelimit.middleware.RateLimitMiddleware") == 1
        client = Client(REMOTE_ADDR="203.0.113.7", SERVER_NAME="localhost")
        codes = [client.post("/api/cloud/expensive").status_code for _ in range(6)]
        print("expensive:", codes, client.post("/api/cloud/expensive")["X-RateLimit-Limit"])
        print("public:", client.get("/api/cloud/public")["X-RateLimit-Limit"])
        print("elsewhere:", client.get("/api/cloud/nowhere")["X-RateLimit-Limit"])
    """
    done = run_script(instance, textwrap.dedent(client_code), settings_dir, name="client.py")
    out = done.stdout
    assert "expensive: [404, 404, 404, 404, 404, 429] 5" in out, out + done.stderr
    assert "public: 1000" in out and "elsewhere: 100" in out
