"""Every change made through the admin is audited.

Django's admin reports each add, change and delete it saves to ModelAdmin.log_addition,
log_change and log_deletions (which write its own LogEntry history). AuditedAdminMixin hooks
those three, so whatever a ModelAdmin saves, Django's own User and Group admins included,
also writes an `admin.added` / `admin.changed` / `admin.deleted` entry: the changed fields by
label as Django names them, and their new values (secrets only as "(changed)").
cloudops.admin_site registers every ModelAdmin with the mixin.

A ModelAdmin whose saves go through a service that audits itself (provider_config_update,
api_key_create, ...) lists those operations in `audited_by_service`, so nothing is audited
twice. Admin actions call such services; tests/audit/test_admin_changes.py runs every action
of every registered ModelAdmin and fails on one that writes no entry.

The change and delete views are one transaction in Django, so a change the trail refuses is
rolled back. Bulk deletion (the "delete selected" action) is not: its entries are written, in
one transaction, just before the rows are deleted.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from typing import Any

from django.contrib.auth.models import Permission
from django.db import models, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.text import capfirst

from audit.services import audit_record
from cloudops import audit_events as events

EVENTS = {"add": events.ADMIN_ADDED, "change": events.ADMIN_CHANGED, "delete": events.ADMIN_DELETED}
# Fields whose values never go into the trail, whatever the model: only that they changed.
SECRET_FIELD = re.compile(r"password|secret|token|salt|hash", re.IGNORECASE)
VALUE_LIMIT = 500
MANY_LIMIT = 100
_PLAIN = (str, int, float, bool, type(None), dict, list, dt.date, dt.time, decimal.Decimal, uuid.UUID)


class AuditedAdminMixin:
    """For ModelAdmin: audit what Django's admin logs (see the module docstring).

    A ModelAdmin sets `audited_by_service` to the operations ("add", "change", "delete")
    that the services it calls audit already. (Read with getattr: `audited` puts the mixin
    first in the MRO, where a default here would hide the ModelAdmin's own value.)
    """

    def log_addition(self, request: HttpRequest, obj: models.Model, message: Any) -> Any:
        self._audit(request, obj, "add", message)
        return super().log_addition(request, obj, message)  # type: ignore[misc]

    def log_change(self, request: HttpRequest, obj: models.Model, message: Any) -> Any:
        # Django logs a change even when the form changed nothing ("No fields changed.").
        if message:
            self._audit(request, obj, "change", message)
        return super().log_change(request, obj, message)  # type: ignore[misc]

    def log_deletions(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        # Called before the rows are deleted, so each can still be named.
        with transaction.atomic():
            for obj in queryset:
                self._audit(request, obj, "delete", [])
        return super().log_deletions(request, queryset)  # type: ignore[misc]

    def _audit(self, request: HttpRequest, obj: models.Model, operation: str, message: Any) -> None:
        if operation not in getattr(self, "audited_by_service", ()):
            admin_change_record(request=request, obj=obj, operation=operation, message=message)


def audited(admin_class: type) -> type:
    """`admin_class` with the mixin (itself if it has it already)."""
    if issubclass(admin_class, AuditedAdminMixin):
        return admin_class
    attrs = {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__}
    return type(admin_class.__name__, (AuditedAdminMixin, admin_class), attrs)


def admin_change_record(*, request: HttpRequest, obj: models.Model, operation: str, message: Any) -> None:
    """One entry for an object the admin added, changed or is about to delete."""
    details: dict[str, Any] = {"object": str(obj)[:200]}
    if operation != "delete":
        details["message"] = message
        # An addition records every value (a group is created with its permissions);
        # a change only the fields it changed.
        details["values"] = field_values(obj, None if operation == "add" else changed_labels(message))
    audit_record(
        event_type=EVENTS[operation],
        request=request,
        target_type=obj._meta.label_lower,
        target_id=str(obj.pk),
        action=operation,
        details=details,
    )


def changed_labels(message: Any) -> set[str]:
    """The field labels a LogEntry change message names ([{"changed": {"fields": [...]}}])."""
    if not isinstance(message, list):
        return set()
    return {
        str(label) for item in message if isinstance(item, dict) for label in item.get("changed", {}).get("fields", [])
    }


def field_values(obj: models.Model, labels: set[str] | None) -> dict[str, Any]:
    """Values of the model fields named in `labels` (every field for None). Django's change
    message names a field by its form label (the capitalised verbose name), or by its name
    when the form has no such field (the admin's set-password form reports "password")."""
    values = {}
    for field in [*obj._meta.concrete_fields, *obj._meta.many_to_many]:
        if labels is None or field.name in labels or str(capfirst(field.verbose_name)) in labels:
            values[field.name] = _value(obj, field)
    return values


def _value(obj: models.Model, field: models.Field) -> Any:
    if SECRET_FIELD.search(field.name):
        return "(changed)"
    if field.many_to_many:
        related = getattr(obj, field.name).all()
        if field.related_model is Permission:
            related = related.select_related("content_type")
        return sorted(_name(item) for item in related[:MANY_LIMIT])
    if field.is_relation:
        target = getattr(obj, field.name)
        return None if target is None else str(target)[:VALUE_LIMIT]
    value = field.value_from_object(obj)
    if not isinstance(value, _PLAIN):
        value = str(value)
    return value[:VALUE_LIMIT] if isinstance(value, str) else value


def _name(item: models.Model) -> str:
    # Permissions by the name has_perm() and the README use ("audit.view_auditentry").
    if isinstance(item, Permission):
        return f"{item.content_type.app_label}.{item.codename}"
    return str(item)[:VALUE_LIMIT]
