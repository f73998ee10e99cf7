from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is append-only, in the admin as everywhere else."""

    list_display = [
        "sequence",
        "timestamp",
        "event_type",
        "actor_username",
        "actor_api_key",
        "actor_ip",
        "target_type",
        "target_id",
    ]
    list_filter = ["event_type", "target_type", "timestamp"]
    search_fields = ["actor_username", "actor_api_key", "actor_ip", "target_id"]
    date_hierarchy = "timestamp"
    ordering = ["-sequence"]
    readonly_fields = [f.name for f in AuditEntry._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
