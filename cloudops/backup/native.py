"""PostgreSQL and MySQL/MariaDB: the database's own backup tools, with this server's parameters.

cloudops does not pretend to back up a server database: `pg_dump` / `mysqldump` make
consistent dumps, and point-in-time recovery belongs to the database's own tooling. These
build the exact commands for the configured database. A password is never put on a command
line (other users can read it in the process list); the notes say where the tool reads it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

VENDOR_NAMES = {"postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB"}


@dataclass(frozen=True)
class NativeTools:
    vendor: str
    database: str
    backup: str
    restore: str
    notes: list[str] = field(default_factory=list)

    @property
    def vendor_name(self) -> str:
        return VENDOR_NAMES.get(self.vendor, self.vendor)

    def explain(self) -> str:
        lines = [
            f"This server uses {self.vendor_name} ({self.database}), not the embedded SQLite database: "
            f"back it up with {self.vendor_name}'s own tools.",
            "",
            "Backup:",
            f"  {self.backup}",
            "Restore (stop every cloudops process first):",
            f"  {self.restore}",
        ]
        if self.notes:
            lines += ["", *self.notes]
        return "\n".join(lines)


def native_tools(vendor: str, settings_dict: dict[str, Any], *, stamp: str) -> NativeTools:
    """The backup and restore commands for `settings_dict` (a Django DATABASES entry)."""
    if vendor == "postgresql":
        return _postgres(settings_dict, stamp)
    if vendor == "mysql":
        return _mysql(settings_dict, stamp)
    raise ValueError(f"no native tools known for {vendor}")


def _where(s: dict[str, Any], default_port: str) -> str:
    return f"{s.get('USER') or '(default user)'}@{s.get('HOST') or 'localhost'}:{s.get('PORT') or default_port}/{s['NAME']}"


def _postgres(s: dict[str, Any], stamp: str) -> NativeTools:
    target = [f"--host={s.get('HOST') or 'localhost'}", f"--port={s.get('PORT') or 5432}"]
    if s.get("USER"):
        target.append(f"--username={s['USER']}")
    env = ""
    if (s.get("OPTIONS") or {}).get("sslmode"):
        env = f"PGSSLMODE={shlex.quote(str(s['OPTIONS']['sslmode']))} "
    dump = f"jobs_backup_{stamp}.dump"
    backup = env + shlex.join(["pg_dump", "--format=custom", *target, f"--dbname={s['NAME']}", f"--file={dump}"])
    restore = env + shlex.join(["pg_restore", "--clean", "--if-exists", *target, f"--dbname={s['NAME']}", dump])
    notes = [
        "pg_dump reads the password from ~/.pgpass (mode 0600; a line host:port:database:user:password) "
        "or the file named by PGPASSFILE, never from the command line."
    ]
    if s.get("PASSWORD"):
        notes.append("DATABASE_URL contains a password: put it in ~/.pgpass for the user running the backup.")
    notes.append("The custom format (-Fc) is compressed; `pg_restore --list FILE` checks a dump without restoring.")
    return NativeTools("postgresql", _where(s, "5432"), backup, restore, notes)


def _mysql(s: dict[str, Any], stamp: str) -> NativeTools:
    target = [f"--host={s.get('HOST') or 'localhost'}", f"--port={s.get('PORT') or 3306}"]
    if s.get("USER"):
        target.append(f"--user={s['USER']}")
    dump = f"jobs_backup_{stamp}.sql"
    options = ["--single-transaction", "--quick", "--no-tablespaces", "--default-character-set=utf8mb4"]
    backup = shlex.join(["mysqldump", *options, *target, f"--result-file={dump}", s["NAME"]])
    restore = shlex.join(["mysql", "--default-character-set=utf8mb4", *target, s["NAME"]]) + f" < {shlex.quote(dump)}"
    notes = [
        "mysqldump reads the password from an option file, never from the command line: a [client] section with "
        "password=... in ~/.my.cnf (mode 0600), or a file given as the first option, --defaults-extra-file=FILE.",
        "--single-transaction makes a consistent dump of InnoDB tables without locking the server. "
        "MariaDB also installs it as mariadb-dump.",
    ]
    if s.get("PASSWORD"):
        notes.append("DATABASE_URL contains a password: put it in that option file for the user running the backup.")
    return NativeTools("mysql", _where(s, "3306"), backup, restore, notes)
