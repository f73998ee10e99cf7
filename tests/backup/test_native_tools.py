"""PostgreSQL and MySQL/MariaDB: the commands print the database's own tools instead of pretending.

The command builders are checked on every run; the commands themselves on the PostgreSQL and
MariaDB runs, where the printed backup command is run for real against the test database.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from cloudops.backup import JobStore, NotSQLiteError
from cloudops.backup.native import native_tools
from tests.services import require_tool

server_only = pytest.mark.skipif(
    connection.vendor == "sqlite", reason="SQLite is backed up by cloudops itself (the other tests in tests/backup)"
)
TOOL = {"postgresql": "pg_dump", "mysql": "mysqldump"}

SECRET = "pa55 w0rd;$(rm -rf /)"


def test_the_postgresql_commands_name_the_database_but_never_the_password() -> None:
    tools = native_tools(
        "postgresql",
        {"NAME": "cloudops", "USER": "ops", "PASSWORD": SECRET, "HOST": "db.internal", "PORT": 6432, "OPTIONS": {}},
        stamp="20240115_103000",
    )

    assert tools.backup == (
        "pg_dump --format=custom --host=db.internal --port=6432 --username=ops --dbname=cloudops "
        "--file=jobs_backup_20240115_103000.dump"
    )
    assert tools.restore.startswith("pg_restore --clean --if-exists --host=db.internal --port=6432 --username=ops")
    assert SECRET not in tools.explain() and "pa55" not in tools.explain()
    assert "~/.pgpass" in tools.explain() and "DATABASE_URL contains a password" in tools.explain()


def test_postgresql_ssl_settings_reach_pg_dump_through_its_environment() -> None:
    tools = native_tools(
        "postgresql", {"NAME": "db", "HOST": "h", "PORT": "", "OPTIONS": {"sslmode": "verify-full"}}, stamp="x"
    )

    assert tools.backup.startswith("PGSSLMODE=verify-full pg_dump ")
    assert "--port=5432" in tools.backup and "--username" not in tools.backup


def test_the_mysql_commands_name_the_database_but_never_the_password() -> None:
    tools = native_tools(
        "mysql",
        {"NAME": "cloud ops", "USER": "root", "PASSWORD": SECRET, "HOST": "127.0.0.1", "PORT": 3306},
        stamp="20240115_103000",
    )

    assert shlex.split(tools.backup) == [
        "mysqldump",
        "--single-transaction",
        "--quick",
        "--no-tablespaces",
        "--default-character-set=utf8mb4",
        "--host=127.0.0.1",
        "--port=3306",
        "--user=root",
        "--result-file=jobs_backup_20240115_103000.sql",
        "cloud ops",
    ]
    assert tools.restore.endswith("'cloud ops' < jobs_backup_20240115_103000.sql")
    assert SECRET not in tools.explain() and "pa55" not in tools.explain()
    assert "--defaults-extra-file" in tools.explain()


def test_on_sqlite_there_are_no_native_tools_to_print() -> None:
    if connection.vendor == "sqlite":
        assert JobStore().native_tools() is None
    else:
        assert JobStore().native_tools() is not None


@server_only
@pytest.mark.parametrize("command", ["backup", "list_backups", "dbinfo", "restore"])
def test_each_command_prints_the_native_tools_and_exits_2(command: str, tmp_path: Path) -> None:
    args = [str(tmp_path / "x.db")] if command == "restore" else []
    out = StringIO()

    with pytest.raises(CommandError, match="this server uses .*Nothing was done") as failed:
        call_command(command, *args, stdout=out)

    assert failed.value.returncode == 2
    printed = out.getvalue()
    assert f"{TOOL[connection.vendor]} " in printed
    assert connection.settings_dict["NAME"] in printed
    assert not list(tmp_path.iterdir())


@server_only
@pytest.mark.parametrize(
    "call",
    [
        lambda store: store.backup(),
        lambda store: store.list_backups(),
        lambda store: store.get_database_info(),
        lambda store: store.restore("/backup/jobs_backup_20240115_103000.db"),
        lambda store: store.prune_backups(keep=1),
    ],
    ids=["backup", "list_backups", "get_database_info", "restore", "prune_backups"],
)
def test_every_job_store_method_raises_a_clear_error(call: Callable[[JobStore], object]) -> None:
    with pytest.raises(NotSQLiteError, match=f"(?s)not the embedded SQLite database.*\n  {TOOL[connection.vendor]} "):
        call(JobStore())


@server_only
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_printed_backup_command_dumps_the_database(tmp_path: Path, make_jobs: Callable[..., list[str]]) -> None:
    tool = require_tool(TOOL[connection.vendor])
    make_jobs(2)
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("backup", stdout=out)
    (command,) = [
        line.strip() for line in out.getvalue().splitlines() if line.startswith(f"  {TOOL[connection.vendor]} ")
    ]

    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    (dump,) = list(tmp_path.iterdir())
    assert dump.name.startswith("jobs_backup_")
    if connection.vendor == "postgresql":
        listing = subprocess.run(
            [str(Path(tool).with_name("pg_restore")), "--list", str(dump)], capture_output=True, text=True, check=True
        )
        assert "TABLE public providers_job" in listing.stdout
    else:
        text = dump.read_text()
        assert "CREATE TABLE `providers_job`" in text and "INSERT INTO `providers_job`" in text
