"""The curl examples of docs/governance.md run as written, with real curl, against a live server.

Convention (stated at the top of the page): every ```bash or ```sh block whose first command
is `curl` runs, in page order, in one bash per block. `http://127.0.0.1:8080` (or `$CLOUDOPS`)
is the live server; the placeholders below are set to real keys and ids; each curl call must
answer 2xx unless a comment line `# expect: <status>` right above it names another status.
A section that needs another placeholder adds it to PLACEHOLDERS and to `_state` below; an
unknown one fails with its name rather than running with an empty value.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser, Group

from governance.models import ApprovalRequest, ApprovalRule, Quota
from providers.models import Job, JobStatus
from tests.conftest import client_for
from tests.governance.conftest import in_group
from tests.processes import ROOT
from tests.providers.helpers import submit, wait_for_status
from tests.storage.server import serving

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PAGE = ROOT / "docs" / "governance.md"
DOCUMENTED_URL = "http://127.0.0.1:8080"
PLACEHOLDERS = {
    "CLOUDOPS": "the server's URL",
    "KEY": "a researcher's API key (alice, who submitted $JOB_ID)",
    "LEAD_KEY": "a lead's API key",
    "ADMIN_KEY": "a superuser's API key",
    "STAFF_API_KEY": "the same superuser's API key",
    "RULE_ID": "an approval rule",
    "REQUEST_ID": "a pending approval request (of a local job of alice)",
    "OTHER_REQUEST_ID": "another pending approval request, of $JOB_ID",
    "JOB_ID": "alice's job held by $OTHER_REQUEST_ID",
    "QUOTA_ID": "a quota (lena's jobs per day), changed and then removed by the examples",
}
# Every governance endpoint has an example: (method, path with ids as {id}).
ENDPOINTS = {
    ("GET", "/api/users/me"),
    ("GET", "/api/approvals/rules"),
    ("POST", "/api/approvals/rules"),
    ("PATCH", "/api/approvals/rules/{id}"),
    ("DELETE", "/api/approvals/rules/{id}"),
    ("GET", "/api/approvals/requests"),
    ("POST", "/api/approvals/requests/{id}/approve"),
    ("POST", "/api/approvals/requests/{id}/reject"),
    ("GET", "/api/quotas/"),
    ("POST", "/api/quotas/"),
    ("PATCH", "/api/quotas/{id}"),
    ("DELETE", "/api/quotas/{id}"),
}

_BLOCK = re.compile(r"^```(?:bash|sh)\n(.*?)^```", re.S | re.M)
_VARIABLE = re.compile(r"\$\{?([A-Z][A-Z0-9_]*)")
_EXPECT = re.compile(r"^\s*# expect: (\d{3})\s*$", re.M)

# Runs before each block: `curl` becomes a function that records each call's arguments, status
# and expected status (EXPECT, set by `# expect:` lines) in $OUT, then runs the real curl.
PRELUDE = r"""set -u
COUNT=${COUNT:-0}
EXPECT=
curl() {
  local code
  code=$(command curl -sS -o "$OUT/$COUNT.body" -w '%{http_code}' "$@") || code=000
  printf '%s\0' "$@" > "$OUT/$COUNT.args"
  printf '%s %s' "$code" "${EXPECT:-2xx}" > "$OUT/$COUNT.status"
  COUNT=$((COUNT + 1))
  EXPECT=
}
"""


def curl_blocks(text: str) -> list[str]:
    """The page's bash/sh blocks whose first command (after comments) is curl."""
    blocks = []
    for match in _BLOCK.finditer(text):
        commands = [line for line in match[1].splitlines() if line.strip() and not line.lstrip().startswith("#")]
        if commands and commands[0].lstrip().startswith("curl "):
            blocks.append(match[1])
    return blocks


@dataclass
class Call:
    args: list[str]
    status: str
    expected: str
    body: str

    @property
    def method(self) -> str:
        if "-X" in self.args:
            return self.args[self.args.index("-X") + 1]
        return "POST" if "-d" in self.args else "GET"

    @property
    def path(self) -> str:
        url = next(arg for arg in self.args if arg.startswith("http"))
        path = re.sub(r"^https?://[^/]+", "", url).split("?")[0]
        return re.sub(r"/[0-9]+(?=/|$)", "/{id}", path)

    @property
    def ok(self) -> bool:
        return self.status.startswith("2") if self.expected == "2xx" else self.status == self.expected


def run_block(block: str, base: str, env: dict[str, str], out: Path, start: int) -> list[Call]:
    unknown = sorted(set(_VARIABLE.findall(block)) - set(PLACEHOLDERS))
    assert not unknown, f"docs/governance.md uses {unknown}: add them to PLACEHOLDERS in {__file__}"
    script = _EXPECT.sub(r"EXPECT=\1", block.replace(DOCUMENTED_URL, base))
    done = subprocess.run(
        ["bash", "-c", PRELUDE + script],
        env={**env, "OUT": str(out), "COUNT": str(start), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"block failed ({done.returncode}): {done.stderr}\n{block}"
    calls = []
    for index in range(start, len(list(out.glob("*.status")))):
        status, expected = (out / f"{index}.status").read_text().split()
        args = (out / f"{index}.args").read_text().split("\0")[:-1]
        calls.append(Call(args, status, expected, (out / f"{index}.body").read_text(errors="replace")))
    return calls


def _held(client, body: dict) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    response = submit(client, body)
    assert response.status_code == 201 and response.json()["status"] == JobStatus.PENDING_APPROVAL, response.json()
    job_id = response.json()["job_id"]
    return ApprovalRequest.objects.get(job_id=job_id).pk, job_id


@pytest.fixture
def live() -> Iterator[str]:
    with serving() as base:
        yield base


@pytest.fixture
def _state(live: str, alice: AbstractUser, olivia: AbstractUser, make_user) -> dict[str, str]:  # type: ignore[no-untyped-def]
    lena = in_group(make_user("lena"), "lead")
    rule = ApprovalRule.objects.create(name="local jobs", condition="provider", threshold="local")
    alice_client = client_for(alice)
    quick = {"provider": "local", "config": {"max_train_steps": 1, "step_seconds": 0, "checkpoint_size_mb": 0}}
    request_id, _ = _held(alice_client, quick)
    other_request_id, job_id = _held(alice_client, quick)
    admin_key = client_for(olivia).raw_key  # type: ignore[attr-defined]
    Group.objects.create(name="vision")  # the group the Quotas section's examples limit
    quota = Quota.objects.create(scope="user", target="lena", quota_type="jobs_per_day", limit=10)
    return {
        "CLOUDOPS": live,
        "KEY": alice_client.raw_key,  # type: ignore[attr-defined]
        "LEAD_KEY": client_for(lena).raw_key,  # type: ignore[attr-defined]
        "ADMIN_KEY": admin_key,
        "STAFF_API_KEY": admin_key,
        "RULE_ID": str(rule.pk),
        "REQUEST_ID": str(request_id),
        "OTHER_REQUEST_ID": str(other_request_id),
        "JOB_ID": job_id,
        "QUOTA_ID": str(quota.pk),
    }


def test_the_page_has_curl_blocks_for_every_governance_endpoint() -> None:
    blocks = curl_blocks(PAGE.read_text())
    assert len(blocks) >= 4
    text = "\n".join(blocks)
    for method, path in ENDPOINTS:
        pattern = re.escape(path).replace(r"\{id\}", r"\$[A-Z_]+")
        assert re.search(pattern, text), f"no curl example for {method} {path}"


def test_every_curl_example_of_the_governance_page_answers_as_documented(
    live: str, _state: dict[str, str], tmp_path: Path
) -> None:
    calls: list[Call] = []
    for block in curl_blocks(PAGE.read_text()):
        calls += run_block(block, live, _state, tmp_path, len(calls))
    failed = [f"{c.method} {c.path}: {c.status}, expected {c.expected}: {c.body[:300]}" for c in calls if not c.ok]
    assert not failed, "\n".join(failed)
    assert {(c.method, c.path) for c in calls} >= ENDPOINTS
    # The examples did what they say.
    assert not ApprovalRule.objects.filter(pk=_state["RULE_ID"]).exists()
    assert ApprovalRule.objects.filter(name="big spend", condition="cost_exceeds").exists()
    assert ApprovalRequest.objects.get(pk=_state["REQUEST_ID"]).status == "approved"
    assert ApprovalRequest.objects.get(pk=_state["OTHER_REQUEST_ID"]).status == "rejected"
    assert Job.objects.get(pk=_state["JOB_ID"]).error == "Rejected by lena: use gpu-l40s"
    assert {(q.scope, q.target, q.quota_type, q.action) for q in Quota.objects.all()} == {
        ("global", "", "concurrent_jobs", "block"),
        ("group", "vision", "concurrent_jobs", "queue"),
        ("user", "alice", "monthly_spend_usd", "warn"),
    }
    me = next(c for c in calls if c.path == "/api/users/me")
    assert json.loads(me.body)["role"] == "researcher"
    approved = ApprovalRequest.objects.get(pk=_state["REQUEST_ID"]).job_id
    wait_for_status(approved, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.RUNNING)


def test_the_convention_checks_statuses_and_refuses_unknown_placeholders(live: str, tmp_path: Path) -> None:
    text = "Intro\n```bash\n# a comment\ncurl -s http://127.0.0.1:8080/api/cloud/health/live\n# expect: 401\n"
    text += "curl -s $CLOUDOPS/api/users/me\ncurl -s $CLOUDOPS/api/users/me\n```\n```python\ncurl = 1\n```\n"
    blocks = curl_blocks(text)
    assert len(blocks) == 1
    calls = run_block(blocks[0], live, {"CLOUDOPS": live}, tmp_path, 0)
    assert [(c.path, c.status, c.expected, c.ok) for c in calls] == [
        ("/api/cloud/health/live", "200", "2xx", True),
        ("/api/users/me", "401", "401", True),
        ("/api/users/me", "401", "2xx", False),
    ]
    with pytest.raises(AssertionError, match="WIDGET_ID"):
        run_block("curl -s $CLOUDOPS/api/widgets/$WIDGET_ID\n", live, {"CLOUDOPS": live}, tmp_path, 0)
