from __future__ import annotations

import pytest
from django.contrib.admin.sites import site
from django.test import Client

from audit.models import AuditEntry, AuditImmutableError
from audit.services import audit_record
from cloudops.auditing import Actor

pytestmark = pytest.mark.django_db


def test_entries_cannot_be_changed_through_the_orm() -> None:
    entry = audit_record(event_type="job.submitted", actor=Actor(username="alice"))
    entry.event_type = "job.cancelled"
    with pytest.raises(AuditImmutableError):
        entry.save()
    with pytest.raises(AuditImmutableError):
        AuditEntry.objects.filter(pk=entry.pk).update(event_type="x")
    assert AuditEntry.objects.get(pk=entry.pk).event_type == "job.submitted"


def test_entries_cannot_be_deleted_through_the_orm() -> None:
    entry = audit_record(event_type="job.submitted")
    with pytest.raises(AuditImmutableError):
        entry.delete()
    with pytest.raises(AuditImmutableError):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.count() == 1


def test_sequences_are_consecutive() -> None:
    entries = [audit_record(event_type="x") for _ in range(5)]
    assert [e.sequence for e in entries] == [1, 2, 3, 4, 5]


def test_the_admin_lists_entries_but_cannot_add_change_or_delete(olivia) -> None:  # type: ignore[no-untyped-def]
    entry = audit_record(event_type="webhook_rejected", actor=Actor(ip="203.0.113.9"))
    model_admin = site._registry[AuditEntry]
    client = Client()
    client.force_login(olivia)
    listing = client.get("/admin/audit/auditentry/?event_type=webhook_rejected")
    assert listing.status_code == 200
    assert b"203.0.113.9" in listing.content
    assert client.get(f"/admin/audit/auditentry/{entry.pk}/change/").status_code == 200
    assert client.get("/admin/audit/auditentry/add/").status_code == 403
    request = listing.wsgi_request
    assert not model_admin.has_change_permission(request, entry)
    assert not model_admin.has_delete_permission(request, entry)
    post = client.post(f"/admin/audit/auditentry/{entry.pk}/change/", {"event_type": "forged"})
    assert post.status_code == 403
    assert AuditEntry.objects.get(pk=entry.pk).event_type == "webhook_rejected"
