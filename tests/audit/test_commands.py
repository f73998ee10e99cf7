"""`audit_verify` and `audit_reanchor`: the same services as the API, with exit codes for cron."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from audit.chain import AuditKeyMismatch
from audit.models import AuditEntry, AuditVerification
from audit.services import audit_record
from audit.verification import audit_verify
from tests.audit import tamper
from tests.processes import ROOT, django_env


def seed(n: int) -> None:
    for i in range(n):
        audit_record(event_type="job.submitted", target_id=str(i))


@pytest.mark.django_db
def test_audit_verify_prints_a_summary_and_records_the_run(capsys) -> None:  # type: ignore[no-untyped-def]
    seed(3)
    call_command("audit_verify")
    assert "OK: 3 chained entries verified (#1..#3" in capsys.readouterr().out
    assert AuditVerification.objects.get().trigger == "command"


@pytest.mark.django_db
def test_audit_verify_fails_with_exit_code_1_naming_the_problem() -> None:
    seed(3)
    tamper.delete_entries(2)
    with pytest.raises(CommandError, match=r"FAILED \(missing at #2\)") as failure:
        call_command("audit_verify")
    assert failure.value.returncode == 1


@pytest.mark.django_db
def test_audit_verify_json_is_machine_readable(capsys) -> None:  # type: ignore[no-untyped-def]
    seed(4)
    call_command("audit_verify", "--json", "--from-sequence", "2", "--to-sequence", "3")
    out, err = capsys.readouterr()
    body = json.loads(out)
    assert body["ok"] is True and (body["from_sequence"], body["to_sequence"], body["checked"]) == (2, 3, 2)
    assert "OK:" in err


@pytest.mark.django_db
def test_a_bad_range_is_exit_code_2_naming_the_option() -> None:
    seed(2)
    with pytest.raises(CommandError, match="--to-sequence: Must be at most 2") as failure:
        call_command("audit_verify", "--to-sequence", "9")
    assert failure.value.returncode == 2


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_exit_code_reaches_the_shell() -> None:
    seed(3)
    manage = [sys.executable, "manage.py", "audit_verify"]
    ok = subprocess.run(manage, cwd=ROOT, env=django_env(), capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    tamper.edit_entry(3, event_type="job.cancelled")
    failed = subprocess.run(manage, cwd=ROOT, env=django_env(), capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1
    assert "edited at #3" in failed.stderr


@pytest.mark.django_db
def test_reanchoring_needs_confirmation_and_a_reason() -> None:
    seed(1)
    with pytest.raises(CommandError, match="--yes"):
        call_command("audit_reanchor", "--reason", "lost key")
    with pytest.raises(CommandError, match="--reason"):
        call_command("audit_reanchor", "--reason", "  ", "--yes")
    assert AuditEntry.objects.count() == 1


@pytest.mark.django_db
def test_after_a_key_change_reanchoring_starts_a_new_verifiable_segment(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    seed(3)
    monkeypatch.setenv("SIMPLETUNER_AUDIT_KEY", "the new key after the old one was lost " + "x" * 8)
    with pytest.raises(AuditKeyMismatch):
        audit_record(event_type="job.submitted")
    assert audit_verify().reason == "wrong_key"
    call_command("audit_reanchor", "--reason", "old key lost", "--yes")
    assert "Re-anchored at #3; verification now starts at #4." in capsys.readouterr().out
    marker = AuditEntry.objects.get(sequence=4)
    assert marker.event_type == "audit.reanchored"
    assert marker.details["reason"] == "old key lost" and marker.details["previous_head_verified"] is False
    audit_record(event_type="job.submitted")
    result = audit_verify()
    assert result.ok and (result.checked, result.unverified) == (2, 3)


@pytest.mark.django_db
def test_reanchoring_after_an_incident_moves_past_tampered_rows() -> None:
    seed(5)
    tamper.delete_entries(2)
    tamper.edit_head(last_sequence=3)  # head rewritten: appends are refused from here on
    call_command("audit_reanchor", "--reason", "incident 42 investigated", "--yes")
    entry = audit_record(event_type="job.submitted")
    assert entry.sequence == 7  # past #5, the highest row, not the tampered head's #3
    assert audit_verify().ok
