"""Reading the audit trail (the API and the admin share these filters)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet

from audit.models import AuditEntry


def audit_entries(
    *,
    event_type: str | None = None,
    actor: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEntry]:
    """Entries newest first. `actor` matches a username, an API key prefix or an IP."""
    entries = AuditEntry.objects.all()
    if event_type:
        entries = entries.filter(event_type=event_type)
    if actor:
        entries = entries.filter(Q(actor_username=actor) | Q(actor_api_key=actor) | Q(actor_ip=actor))
    if target_type:
        entries = entries.filter(target_type=target_type)
    if target_id:
        entries = entries.filter(target_id=target_id)
    if since:
        entries = entries.filter(timestamp__gte=since)
    if until:
        entries = entries.filter(timestamp__lte=until)
    return entries.order_by("-sequence")
