"""cloudops: the operations server for SimpleTuner cloud training."""

from __future__ import annotations

__version__ = "0.1.0"


def _install_pymysql() -> None:
    # PyMySQL stands in for mysqlclient so MySQL/MariaDB work without C headers.
    # Django checks the driver version, so PyMySQL reports a mysqlclient-compatible one.
    try:
        import pymysql
    except ImportError:  # pragma: no cover - PyMySQL is in requirements.txt
        return
    pymysql.version_info = (2, 2, 4, "final", 0)
    pymysql.install_as_MySQLdb()


_install_pymysql()
