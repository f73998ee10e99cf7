"""Retention removes old entries; what remains still verifies, and the prune is audited."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from rest_framework.test import APIClient

from audit import retention
from audit.models import AuditEntry
from audit.retention import AuditPruneRefused, audit_prune
from audit.selectors import audit_totals, head_state
from audit.services import audit_record
from audit.verification import AuditRangeError, audit_verify
from tests.audit import tamper
from tests.audit.conftest import T0

pytestmark = pytest.mark.django_db


def seed_daily(clock: list[datetime], days: int) -> list[AuditEntry]:
    """One entry a day from T0; the clock is left at the last one."""
    entries = []
    for day in range(days):
        clock[0] = T0 + timedelta(days=day)
        entries.append(audit_record(event_type="job.submitted", target_id=str(day)))
    return entries


def test_pruning_removes_old_entries_and_the_rest_still_verifies(clock: list[datetime]) -> None:
    entries = seed_daily(clock, 10)  # #1..#10 on days 0..9
    clock[0] = T0 + timedelta(days=10)
    result = audit_prune(retention_days=5)  # cutoff day 5: #1..#5 go
    assert (result.through_sequence, result.pruned, result.deleted_rows) == (5, 5, 5)
    assert list(AuditEntry.objects.order_by("sequence").values_list("sequence", flat=True)) == [6, 7, 8, 9, 10, 11]
    head = head_state()
    assert (head.pruned_through, head.anchor_sequence, head.anchor_mac) == (5, 5, entries[4].mac)
    verification = audit_verify()
    assert verification.ok and (verification.from_sequence, verification.to_sequence) == (6, 11)
    assert (audit_totals().total, audit_totals().written) == (6, 11)


def test_pruning_is_audited_with_its_anchor(clock: list[datetime]) -> None:
    entries = seed_daily(clock, 4)
    clock[0] = T0 + timedelta(days=11)
    audit_prune(retention_days=7)  # cutoff day 4: every entry (days 0..3) is older
    pruned = AuditEntry.objects.get(event_type="audit.pruned")
    assert pruned.sequence == 5 and pruned.target_type == "audit_chain" and pruned.action == "prune"
    assert pruned.details == {
        "through_sequence": 4,
        "pruned": 4,
        "retention_days": 7,
        "cutoff": "2024-03-05T12:00:00.000000Z",
        "anchor_sequence": 4,
        "anchor_mac": entries[3].mac,
        "verified": True,
        "verification_failure": None,
    }
    assert audit_verify().ok  # the whole chain was old: only the prune entry remains


def test_pruning_twice_is_safe(clock: list[datetime]) -> None:
    seed_daily(clock, 6)
    clock[0] = T0 + timedelta(days=10)
    audit_prune(retention_days=7)
    again = audit_prune(retention_days=7)
    assert (again.pruned, again.deleted_rows) == (0, 0)
    assert AuditEntry.objects.filter(event_type="audit.pruned").count() == 1
    assert audit_verify().ok


def test_retention_off_prunes_nothing(clock: list[datetime]) -> None:
    seed_daily(clock, 3)
    clock[0] = T0 + timedelta(days=1000)
    result = audit_prune()  # SIMPLETUNER_AUDIT_RETENTION_DAYS defaults to 0
    assert (result.retention_days, result.pruned) == (0, 0)
    assert AuditEntry.objects.count() == 3


def test_a_dry_run_reports_and_removes_nothing(clock: list[datetime]) -> None:
    seed_daily(clock, 6)
    clock[0] = T0 + timedelta(days=8)
    result = audit_prune(retention_days=5, dry_run=True)
    assert (result.through_sequence, result.pruned, result.deleted_rows, result.dry_run) == (3, 3, 0, True)
    assert AuditEntry.objects.count() == 6 and head_state().pruned_through == 0


def test_entries_newer_than_the_cutoff_are_never_removed_even_behind_a_skewed_clock(clock: list[datetime]) -> None:
    seed_daily(clock, 3)
    clock[0] = T0 + timedelta(days=1, hours=1)  # a host whose clock is behind writes #4
    audit_record(event_type="job.submitted")
    clock[0] = T0 + timedelta(days=5)
    result = audit_prune(retention_days=4)  # cutoff: day 1 at T0's hour; #2 and #3 are newer
    assert result.through_sequence == 1
    assert audit_verify().ok


def test_pruning_refuses_to_destroy_entries_that_do_not_verify(clock: list[datetime]) -> None:
    seed_daily(clock, 6)
    tamper.edit_entry(2, target_id="covered up")
    clock[0] = T0 + timedelta(days=10)
    with pytest.raises(AuditPruneRefused) as refused:
        audit_prune(retention_days=7)
    assert (refused.value.verification.reason, refused.value.verification.first_bad_sequence) == ("edited", 2)
    assert AuditEntry.objects.count() == 6 and head_state().pruned_through == 0


def test_a_forced_prune_removes_them_and_says_so(clock: list[datetime]) -> None:
    seed_daily(clock, 6)
    tamper.edit_entry(2, target_id="covered up")
    clock[0] = T0 + timedelta(days=10)
    result = audit_prune(retention_days=7, force=True)  # cutoff day 3: #1..#3 go
    assert result.pruned == 3
    pruned = AuditEntry.objects.get(event_type="audit.pruned")
    assert pruned.details["verified"] is False and pruned.details["verification_failure"] == "edited"
    assert audit_verify().ok


def test_after_pruning_a_tampered_anchor_or_a_deleted_first_entry_is_detected(clock: list[datetime]) -> None:
    seed_daily(clock, 8)
    clock[0] = T0 + timedelta(days=10)
    audit_prune(retention_days=5)  # cutoff day 5: #1..#5 go, #6..#9 remain
    tamper.delete_entries(6)
    assert (audit_verify().reason, audit_verify().first_bad_sequence) == ("missing", 6)
    tamper.edit_head(anchor_sequence=6)
    assert audit_verify().reason == "bad_head"


def test_a_range_below_what_was_pruned_is_a_range_error(clock: list[datetime]) -> None:
    seed_daily(clock, 8)
    clock[0] = T0 + timedelta(days=10)
    audit_prune(retention_days=5)
    with pytest.raises(AuditRangeError) as error:
        audit_verify(from_sequence=2)
    assert error.value.parameter == "from_sequence" and "#6" in str(error.value)
    assert audit_verify(from_sequence=6, to_sequence=7).ok


def test_the_list_api_no_longer_shows_pruned_entries(clock: list[datetime], staff_client: APIClient) -> None:
    seed_daily(clock, 6)
    clock[0] = T0 + timedelta(days=10)
    audit_prune(retention_days=7)
    body = staff_client.get("/api/audit?limit=100").json()
    # #1 is the staff key (T0), #2..#7 days 0..5; the cutoff (day 3) keeps #5..#7, then the prune entry.
    assert body["total"] == 4
    assert [e["sequence"] for e in body["entries"]] == [8, 7, 6, 5]


def test_a_prune_interrupted_after_anchoring_is_finished_by_the_next_run(clock: list[datetime]) -> None:
    seed_daily(clock, 6)
    clock[0] = T0 + timedelta(days=10)
    first = audit_verify(from_sequence=1, to_sequence=4)
    # What a process that died between recording the anchor and deleting rows leaves behind.
    retention._anchor(through=4, cutoff=T0 + timedelta(days=4), days=6, verification=first, actor=None)
    assert AuditEntry.objects.filter(sequence__lte=4).count() == 4
    assert audit_verify().ok and audit_totals().total == 3
    finished = audit_prune(retention_days=6)
    assert (finished.pruned, finished.deleted_rows) == (0, 4)
    assert not AuditEntry.objects.filter(sequence__lte=4).exists()


def test_rows_are_deleted_in_batches(clock: list[datetime], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "DELETE_BATCH", 2)
    seed_daily(clock, 7)
    clock[0] = T0 + timedelta(days=30)
    assert audit_prune(retention_days=10).deleted_rows == 7
    assert audit_verify().ok


@override_settings(SIMPLETUNER_AUDIT_RETENTION_DAYS=5)
def test_the_command_prunes_with_the_configured_retention(clock: list[datetime], capsys) -> None:  # type: ignore[no-untyped-def]
    seed_daily(clock, 8)
    clock[0] = T0 + timedelta(days=10)
    call_command("prune_audit")
    assert "pruned 5 entries older than 2024-03-06 12:00:00 UTC (through #5; 5 rows deleted)" in capsys.readouterr().out
    call_command("prune_audit")
    assert "pruned 0 entries" in capsys.readouterr().out
    assert audit_verify().ok


def test_the_command_says_when_retention_is_off(capsys) -> None:  # type: ignore[no-untyped-def]
    call_command("prune_audit")
    assert "Retention is off" in capsys.readouterr().out


def test_the_command_refuses_tampered_entries_unless_forced(clock: list[datetime]) -> None:
    seed_daily(clock, 4)
    tamper.edit_entry(1, action="covered up")
    clock[0] = T0 + timedelta(days=10)
    with pytest.raises(CommandError, match="--force"):
        call_command("prune_audit", "--days", "3")
    call_command("prune_audit", "--days", "3", "--force")
    assert not AuditEntry.objects.filter(sequence=1).exists()


def test_the_command_rejects_a_retention_of_zero_days() -> None:
    with pytest.raises(CommandError, match="--days must be at least 1"):
        call_command("prune_audit", "--days", "0")
