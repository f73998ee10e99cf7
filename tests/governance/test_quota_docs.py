"""The curl examples of docs/governance.md's Quotas section, run as written against a real
server (only the address, the keys and the example ids are filled in)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser, Group

from governance.models import Quota
from tests.conftest import client_for
from tests.metrics.live import servers
from tests.processes import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def quota_examples() -> list[str]:
    """The commands of the Quotas section's bash block (continuation lines joined)."""
    text = (ROOT / "docs" / "governance.md").read_text()
    section = text.split("\n## Quotas\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("\n```", 1)[0]
    joined = re.sub(r"\\\n\s*", "", block)
    return [line for line in joined.splitlines() if line.startswith("curl ")]


def test_the_quota_examples_run_as_documented(tmp_path: Path, olivia: AbstractUser, alice: AbstractUser) -> None:
    Group.objects.create(name="vision")
    keys = {"ADMIN_KEY": client_for(olivia).raw_key, "KEY": client_for(alice).raw_key}  # type: ignore[attr-defined]
    commands = quota_examples()
    assert len(commands) == 6
    with servers(1, tmp_path) as (base,):
        statuses = []
        for command in commands:
            if "/api/quotas/2" in command:  # the example's id: the group quota created above
                command = command.replace("/api/quotas/2", f"/api/quotas/{Quota.objects.get(scope='group').pk}")
            argv = [arg.replace("http://127.0.0.1:8080", base) for arg in shlex.split(command)]
            argv = [re.sub(r"\$(ADMIN_KEY|KEY)\b", lambda m: keys[m.group(1)], arg) for arg in argv]
            done = subprocess.run([*argv, "-o", "/dev/null", "-w", "%{http_code}"], capture_output=True, text=True)
            statuses.append(done.stdout)
    assert statuses == ["201", "201", "201", "200", "204", "200"]
    assert {(q.scope, q.target, q.quota_type, q.action) for q in Quota.objects.all()} == {
        ("global", "", "concurrent_jobs", "block"),
        ("user", "alice", "monthly_spend_usd", "warn"),
    }
