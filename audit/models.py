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

    def retention_delete(self, *, through_sequence: int) -> int:
        """Remove entries up to `through_sequence`: the one deliberate way around the guard.

        Only `audit.services.audit_prune` calls it, after the signed head has recorded the
        anchor that keeps the remaining chain verifiable.
        """
        deleted, _ = models.QuerySet.delete(self.filter(sequence__lte=through_sequence))
        return deleted


class AuditEntry(models.Model):
    """One append-only audit record.

    `sequence` is assigned under the lock on `AuditHead`, so entries form one gap-free,
    totally ordered series across processes. `mac` chains each entry to the one before it
    (see audit/chain.py); entries written before the chain existed have an empty `mac` and
    sit before the head's anchor. Actors are stored as text, not foreign keys, so deleting a
    user never rewrites the history that names them.
    """

    sequence = models.BigIntegerField(unique=True)
    timestamp = models.DateTimeField(default=timezone.now, db_index=True)
    event_type = models.CharField(max_length=64)
    actor_username = models.CharField(max_length=150, blank=True, default="")
    actor_api_key = models.CharField("actor API key", max_length=32, blank=True, default="")
    actor_ip = models.CharField("actor IP", max_length=45, blank=True, default="")
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField("target ID", max_length=128, blank=True, default="")
    action = models.CharField(max_length=64, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    mac = models.CharField("MAC", max_length=64, blank=True, default="", help_text="HMAC-SHA256 chaining this entry")

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
    """The signed head checkpoint, kept outside the entries table (one row, pk=1).

    Its row lock serialises appends. It records the last sequence and MAC (so a truncated
    tail is detected), the anchor where verification starts (after rows written before the
    chain, pruned rows or a re-anchor), how far retention has pruned, the key's fingerprint,
    and a MAC over all of that (see audit.chain.HeadState).
    """

    last_sequence = models.BigIntegerField(default=0)
    last_mac = models.CharField(max_length=64, blank=True, default="")
    anchor_sequence = models.BigIntegerField(default=0)
    anchor_mac = models.CharField(max_length=64, blank=True, default="")
    pruned_through = models.BigIntegerField(default=0)
    key_id = models.CharField(max_length=16, blank=True, default="")
    mac = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        verbose_name = "audit head"

    def __str__(self) -> str:
        return f"audit head at #{self.last_sequence}"


class AuditVerification(models.Model):
    """The outcome of one chain verification, shown in the admin and in health.

    Not part of the trail itself: only the latest few are kept.
    """

    finished_at = models.DateTimeField(default=timezone.now, db_index=True)
    trigger = models.CharField(max_length=16)  # api, command, admin, prune
    ok = models.BooleanField()
    reason = models.CharField(max_length=32, blank=True, default="")
    first_bad_sequence = models.BigIntegerField(null=True, blank=True)
    message = models.TextField(blank=True, default="")
    from_sequence = models.BigIntegerField(null=True, blank=True)
    to_sequence = models.BigIntegerField(null=True, blank=True)
    full = models.BooleanField(default=True, help_text="covered the whole retained chain")
    checked = models.BigIntegerField(default=0)
    duration_ms = models.FloatField(default=0)

    class Meta:
        ordering = ["-finished_at", "-id"]

    def __str__(self) -> str:
        return f"audit verification at {self.finished_at:%Y-%m-%d %H:%M:%S}: {'ok' if self.ok else self.reason}"
