"""The kit's systemd units: `systemd-analyze verify` accepts them, and the keys and commands
they rely on are what docs/deploying.md says (read as INI, run through manage.py's parsers)."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.kit import SYSTEMD, manage_py_command, nginx_upstream_ports
from tests.services import require_tool

UNITS = sorted(path.name for path in SYSTEMD.iterdir() if path.suffix in (".service", ".target", ".timer"))
VENV_PYTHON = "/srv/cloudops/.venv/bin/python"
# The one table of every variable cloudops reads (tests/docs/ checks it against the code).
CONFIGURATION = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()


def unit(name: str) -> configparser.ConfigParser:
    # systemd allows a key more than once (ExecStart= lists); none of ours does, so strict
    # parsing also catches a key set twice by mistake.
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SYSTEMD / name).read_text())
    return parser


def manage_py(exec_start: str) -> tuple[str, dict]:
    argv = shlex.split(exec_start.replace("%i", "8081"))
    assert argv[:2] == [VENV_PYTHON, "manage.py"], argv
    return manage_py_command(["python", *argv[1:]])


def test_the_units_are_the_ones_the_docs_name() -> None:
    assert UNITS == [
        "cloudops-audit-verify.service",
        "cloudops-audit-verify.timer",
        "cloudops-backup.service",
        "cloudops-backup.timer",
        "cloudops-migrate.service",
        "cloudops.target",
        "cloudops@.service",
    ]


def test_the_template_runs_serve_on_its_instance_port_as_part_of_the_target() -> None:
    server = unit("cloudops@.service")
    service = server["Service"]
    name, options = manage_py(service["ExecStart"])
    assert (name, options["port"]) == ("serve", 8081)
    assert service["Environment"].split() == ["PORT=%i", "PYTHONUNBUFFERED=1"]
    assert service["EnvironmentFile"] == "/etc/cloudops/env"
    assert service["Restart"] == "on-failure"
    # local jobs outlive a restart of the process that started them
    assert service["KillMode"] == "process"
    assert server["Unit"]["PartOf"] == "cloudops.target"
    assert server["Install"]["WantedBy"] == "cloudops.target"
    assert unit("cloudops.target")["Install"]["WantedBy"] == "multi-user.target"


def test_logs_go_to_the_journal_without_rate_limiting() -> None:
    service = unit("cloudops@.service")["Service"]
    assert (service["StandardOutput"], service["StandardError"]) == ("journal", "journal")
    assert service["SyslogIdentifier"] == "cloudops-%i"
    assert service["LogRateLimitIntervalSec"] == "0"
    env = (SYSTEMD / "cloudops.env").read_text()
    assert re.search(r"(?m)^SIMPLETUNER_LOG_FORMAT=json$", env)


def test_the_backup_timer_runs_the_guides_backup_daily() -> None:
    name, options = manage_py(unit("cloudops-backup.service")["Service"]["ExecStart"])
    assert name == "backup"
    assert (str(options["path"]), options["gzip"], options["retention_days"]) == ("/backup/simpletuner", True, 30)
    assert unit("cloudops-backup.service")["Service"]["Type"] == "oneshot"
    timer = unit("cloudops-backup.timer")
    assert timer["Timer"]["Unit"] == "cloudops-backup.service"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_the_audit_verification_and_migration_units_run_their_commands() -> None:
    assert manage_py(unit("cloudops-audit-verify.service")["Service"]["ExecStart"])[0] == "audit_verify"
    assert unit("cloudops-audit-verify.timer")["Timer"]["Unit"] == "cloudops-audit-verify.service"
    name, options = manage_py(unit("cloudops-migrate.service")["Service"]["ExecStart"])
    assert name == "migrate" and not options["interactive"]


def test_every_unit_that_runs_cloudops_reads_the_same_settings_as_the_same_user() -> None:
    for name in UNITS:
        if name.endswith(".service"):
            service = unit(name)["Service"]
            assert (service["User"], service["EnvironmentFile"]) == ("cloudops", "/etc/cloudops/env"), name
            assert service["WorkingDirectory"] == "/srv/cloudops", name
            assert service["StateDirectory"] == "cloudops", name


def test_the_environment_file_names_variables_cloudops_reads() -> None:
    names = re.findall(r"(?m)^#?([A-Z][A-Z0-9_]+)=", (SYSTEMD / "cloudops.env").read_text())
    assert {"DATABASE_URL", "REDIS_URL", "SIMPLETUNER_HOME", "TRUSTED_PROXIES", "SIMPLETUNER_PUBLIC_URL"} <= set(names)
    for name in names:
        assert f"`{name}`" in CONFIGURATION or f"`{name}`," in CONFIGURATION, name
    # No live secret: the keys are commented out (generated once per host when unset).
    assert not re.search(
        r"(?m)^(SECRET_KEY|SIMPLETUNER_SERVER_KEY|SIMPLETUNER_AUDIT_KEY)=", (SYSTEMD / "cloudops.env").read_text()
    )


def test_nginx_sends_requests_to_the_ports_the_docs_enable() -> None:
    enable = re.search(r"systemctl enable --now ((?:cloudops@\d+ )+)", (SYSTEMD / "cloudops@.service").read_text())
    assert enable is not None
    ports = [int(port) for port in re.findall(r"cloudops@(\d+)", enable.group(1))]
    assert ports == nginx_upstream_ports()


@pytest.mark.parametrize("name", [name.replace("@.", "@8081.") for name in UNITS])
def test_systemd_analyze_verify_accepts_the_unit(name: str, tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    # verify checks that ExecStart's program exists: point it at this interpreter.
    for path in SYSTEMD.iterdir():
        (tmp_path / path.name).write_text(path.read_text().replace(VENV_PYTHON, sys.executable))
    if "@8081." in name:
        shutil.copy(tmp_path / name.replace("@8081.", "@."), tmp_path / name)
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / name)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    # Problems with our files are printed with their path (unknown keys, bad values) even when
    # the exit status stays 0.
    ours = [line for line in done.stderr.splitlines() if str(tmp_path) in line or name in line]
    assert done.returncode == 0 and ours == [], done.stderr
