from __future__ import annotations

import pytest

from audit.models import AuditEntry
from tests.processes import spawn_django, wait_all

pytestmark = pytest.mark.django_db(transaction=True)


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
