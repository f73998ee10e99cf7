from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_head(*, using: str = "default", **kwargs: Any) -> None:
    # The head row exists before the first append, so appends only ever lock an existing row.
    # Creating it under the append lock deadlocks on InnoDB: concurrent first appends take
    # shared locks on the duplicate key and then all wait for each other's exclusive lock.
    from django.db import router

    from audit.models import AuditHead

    # Not on a database that does not hold the audit tables (e.g. the rate-limit state one).
    if router.allow_migrate_model(using, AuditHead):
        AuditHead.objects.using(using).get_or_create(pk=1)


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        # post_migrate also runs after `flush`, which test databases use between tests.
        post_migrate.connect(_ensure_head, sender=self, dispatch_uid="audit.ensure_head")
