from __future__ import annotations

import pytest

from audit.models import AuditEntry
from audit.selectors import head_state
from audit.verification import audit_verify
from tests.processes import spawn_django, wait_all

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_appends_from_several_processes_form_one_gap_free_sequence() -> None:
    code = """
        from audit.services import audit_record
        for i in range(25):
            audit_record(event_type="test.concurrent", target_id=str(i))
        print("ok")
    """
    wait_all([spawn_django(code) for _ in range(4)])
    sequences = sorted(AuditEntry.objects.filter(event_type="test.concurrent").values_list("sequence", flat=True))
    assert sequences == list(range(1, 101))


def test_appends_from_several_processes_form_one_chain_that_verifies() -> None:
    code = """
        import os
        from audit.services import audit_record
        for i in range(20):
            audit_record(event_type="test.concurrent", target_id=f"{os.getpid()}-{i}", details={"i": i})
        print("ok")
    """
    wait_all([spawn_django(code) for _ in range(4)])
    result = audit_verify()
    assert result.ok, result.message
    assert result.checked == 80
    head = head_state()
    assert head.last_sequence == 80
    assert head.last_mac == AuditEntry.objects.get(sequence=80).mac


def test_verifying_while_other_processes_append_never_reports_a_false_failure() -> None:
    code = """
        from audit.services import audit_record
        for i in range(60):
            audit_record(event_type="test.concurrent", target_id=str(i))
        print("ok")
    """
    writers = [spawn_django(code) for _ in range(2)]
    results = []
    while any(w.poll() is None for w in writers):
        results.append(audit_verify(record=False))
    wait_all(writers)
    results.append(audit_verify(record=False))
    assert all(r.ok for r in results), [r.message for r in results if not r.ok]
    assert results[-1].checked == 120


def test_prunes_and_appends_from_several_processes_leave_a_chain_that_verifies() -> None:
    seed = """
        from audit.services import audit_record
        for i in range(30):
            audit_record(event_type="test.old", target_id=str(i))
        print("ok")
    """
    wait_all([spawn_django(seed)])
    # Every existing entry is "old" from the point of view of a clock a year ahead.
    prune = """
        from datetime import timedelta
        from django.utils import timezone
        from audit.retention import audit_prune
        print(audit_prune(retention_days=30, now=timezone.now() + timedelta(days=365)).pruned)
    """
    append = """
        from audit.services import audit_record
        for i in range(20):
            audit_record(event_type="test.new", target_id=str(i))
        print("ok")
    """
    outputs = wait_all([spawn_django(prune), spawn_django(prune), spawn_django(append)])
    # Each sequence is pruned by exactly one of the two; neither fails nor forks the chain.
    assert sum(int(out.strip()) for out in outputs[:2]) == head_state().pruned_through
    assert not AuditEntry.objects.filter(sequence__lte=head_state().pruned_through).exists()
    assert audit_verify().ok
