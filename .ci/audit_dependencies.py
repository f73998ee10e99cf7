#!/usr/bin/env python3
"""Audit the installed dependencies (requirements.txt + requirements-dev.txt, as `make
venv-dev` resolved them) for known vulnerabilities with pip-audit.

Exit 1 if any dependency has a known vulnerability not listed, with its reason, in
.ci/pip-audit-ignore.txt. If no vulnerability service could be asked about any package (a
machine without access to pypi.org's per-release API or to OSV), say so loudly: nothing was
audited. That is a failure under CLOUDOPS_REQUIRE_AUDIT=1, a warning otherwise, because this
machine's CI network reaches PyPI's package index but not its vulnerability API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IGNORE_FILE = ROOT / ".ci" / "pip-audit-ignore.txt"


def ignored_ids() -> list[str]:
    """Vulnerability ids from the ignore file: `ID  # why it does not apply` per line."""
    ids = []
    for line in IGNORE_FILE.read_text().splitlines():
        entry, _, reason = line.partition("#")
        if entry.strip():
            if not reason.strip():
                sys.exit(f"{IGNORE_FILE.name}: {entry.strip()} has no reason after '#'")
            ids.append(entry.strip())
    return ids


def verdict(report: dict, *, require_audit: bool) -> tuple[int, list[str]]:
    """The exit status and the lines to print for a pip-audit JSON report."""
    dependencies = report.get("dependencies", [])
    audited = [d for d in dependencies if "skip_reason" not in d]
    vulnerable = [d for d in audited if d.get("vulns")]
    lines = []
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions", [])) or "no fixed release"
            lines.append(f"VULNERABLE {dependency['name']} {dependency['version']}: {vuln['id']} (fixed in {fixes})")
    lines.append(f"pip-audit: {len(audited)} of {len(dependencies)} packages audited, {len(vulnerable)} vulnerable")
    if vulnerable:
        return 1, lines
    if dependencies and not audited:
        lines.append(
            "pip-audit: NO package could be audited: no vulnerability service answered "
            "(pypi.org's per-release JSON API and OSV are unreachable from here)."
        )
        return (1 if require_audit else 0), lines
    return 0, lines


def main() -> int:
    argv = [str(ROOT / ".venv" / "bin" / "pip-audit"), "--local", "--format", "json", "--progress-spinner", "off"]
    for vuln in ignored_ids():
        argv += ["--ignore-vuln", vuln]
    result = subprocess.run(argv, capture_output=True, text=True)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        print(result.stdout, result.stderr, sep="\n", file=sys.stderr)
        return 1
    status, lines = verdict(report, require_audit=os.environ.get("CLOUDOPS_REQUIRE_AUDIT") == "1")
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main())
