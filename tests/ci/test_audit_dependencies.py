"""The dependency audit step of .ci/run fails on a known vulnerability and never reports
"nothing vulnerable" as a pass when nothing could be audited."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "audit_dependencies.py"


@pytest.fixture(scope="module")
def audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_dependencies", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(*dependencies: dict) -> dict:
    return {"dependencies": list(dependencies), "fixes": []}


def test_a_known_vulnerability_fails_the_run(audit: ModuleType) -> None:
    status, lines = audit.verdict(
        report(
            {"name": "django", "version": "5.2.0", "vulns": [{"id": "PYSEC-1", "fix_versions": ["5.2.1"]}]},
            {"name": "httpx", "version": "0.28.0", "vulns": []},
        ),
        require_audit=False,
    )
    assert status == 1
    assert "VULNERABLE django 5.2.0: PYSEC-1 (fixed in 5.2.1)" in lines


def test_clean_audited_dependencies_pass(audit: ModuleType) -> None:
    status, lines = audit.verdict(report({"name": "httpx", "version": "0.28.0", "vulns": []}), require_audit=True)
    assert status == 0 and lines[-1] == "pip-audit: 1 of 1 packages audited, 0 vulnerable"


def test_nothing_audited_is_said_and_fails_when_an_audit_is_required(audit: ModuleType) -> None:
    skipped = report({"name": "django", "version": "5.2.0", "skip_reason": "Dependency not found on PyPI"})
    status, lines = audit.verdict(skipped, require_audit=True)
    assert status == 1 and "NO package could be audited" in lines[-1]
    status, lines = audit.verdict(skipped, require_audit=False)
    assert status == 0 and "NO package could be audited" in lines[-1]


def test_every_ignored_vulnerability_gives_its_reason(audit: ModuleType) -> None:
    assert audit.ignored_ids() == []  # the list is empty today; an entry needs `# reason`
