from __future__ import annotations

from typing import Any, NoReturn

from django.db import models
from django.utils import timezone


class AuditImmutableError(Exception):
    """Raised on any attempt to change or delete an audit entry through the ORM."""


class AuditQuerySet(models.QuerySet["AuditEntry"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AuditImmutableError("audit entries are append-only")

    def delete(self) -> NoReturn:
        raise AuditImmutableError("audit entries are append-only")


class AuditEntry(models.Model):
    """One append-only audit record.

    `sequence` is assigned under the lock on `AuditHead`, so entries form one gap-free,
    totally ordered series across processes; a hash chain can be layered over it later
    without rewriting rows. Actors are stored as text, not foreign keys, so deleting a
    user never rewrites the history that names them.
    """

    sequence = models.BigIntegerField(unique=True)
    timestamp = models.DateTimeField(default=timezone.now, db_index=True)
    event_type = models.CharField(max_length=64)
    actor_username = models.CharField(max_length=150, blank=True, default="")
    actor_api_key = models.CharField(max_length=32, blank=True, default="")
    actor_ip = models.CharField(max_length=45, blank=True, default="")
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=128, blank=True, default="")
    action = models.CharField(max_length=64, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-sequence"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["event_type", "sequence"], name="audit_event_seq"),
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
            models.Index(fields=["actor_username"], name="audit_actor_user"),
            models.Index(fields=["actor_ip"], name="audit_actor_ip"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.event_type}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditImmutableError("audit entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AuditImmutableError("audit entries are append-only")


class AuditHead(models.Model):
    """The single row whose lock serialises appends and which holds the last sequence."""

    last_sequence = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "audit head"

    def __str__(self) -> str:
        return f"audit head at #{self.last_sequence}"
