"""Rows written before the chain existed are never rewritten: the migration anchors after them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from audit.selectors import head_state
from audit.services import audit_record
from audit.verification import audit_verify
from tests.audit import tamper

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_CHAIN = [("audit", "0001_initial")]


def migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection)


def write_legacy_rows(executor: MigrationExecutor, n: int) -> None:
    apps = executor.loader.project_state(BEFORE_CHAIN).apps
    entry, head = apps.get_model("audit", "AuditEntry"), apps.get_model("audit", "AuditHead")
    for sequence in range(1, n + 1):
        entry.objects.create(sequence=sequence, timestamp=timezone.now(), event_type="auth.login.success")
    # `migrate` creates the head row (audit/apps.py), so it may exist already.
    head.objects.update_or_create(pk=1, defaults={"last_sequence": n})


def test_existing_rows_keep_their_content_and_verification_starts_after_them() -> None:
    executor = migrate(BEFORE_CHAIN)
    write_legacy_rows(executor, 3)
    migrate(executor.loader.graph.leaf_nodes())
    before = list(_rows())
    head = head_state()
    assert (head.last_sequence, head.anchor_sequence, head.anchor_mac, len(head.mac)) == (3, 3, "", 64)
    result = audit_verify()
    assert result.ok and (result.checked, result.unverified) == (0, 3)

    entry = audit_record(event_type="job.submitted")
    assert entry.sequence == 4
    result = audit_verify()
    assert result.ok and (result.from_sequence, result.to_sequence, result.checked, result.unverified) == (1, 4, 1, 3)
    assert list(_rows())[:3] == before  # never rewritten: still no MAC, same content

    tamper.edit_head(anchor_sequence=0)
    assert audit_verify().reason == "bad_head"


def test_a_new_install_needs_no_anchor() -> None:
    migrate(BEFORE_CHAIN)
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    head = head_state()
    assert head is None or head.is_genesis
    assert audit_record(event_type="job.submitted").sequence == 1
    assert audit_verify().ok


def _rows() -> list[tuple]:
    from audit.models import AuditEntry

    return list(AuditEntry.objects.order_by("sequence").values_list("sequence", "event_type", "mac"))
