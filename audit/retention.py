"""Retention: remove old audit entries without breaking verification of what remains.

Pruning always removes a prefix of the chain (every entry up to a sequence), never a
selection, so what remains is contiguous. It first verifies the part it is about to remove
(evidence of tampering is not destroyed silently), then, under the head lock, records the
anchor (the sequence and MAC of the last removed entry) in the signed head and appends an
`audit.pruned` entry, and only then deletes rows, in short batches. If it stops half-way the
rows left behind are already outside the chain, and the next run deletes them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from audit.chain import AuditChainError, HeadState, audit_key, canonical_timestamp
from audit.head import head_locked, head_sign, head_verified
from audit.models import AuditEntry
from audit.selectors import head_state
from audit.services import audit_record
from audit.verification import AuditRangeError, VerifyResult, audit_verify
from cloudops import audit_events as events
from cloudops.auditing import Actor

DELETE_BATCH = 10_000


class AuditPruneRefused(AuditChainError):
    """The entries to prune do not verify; pruning them would destroy the evidence."""

    def __init__(self, verification: VerifyResult) -> None:
        super().__init__(f"refusing to prune entries that do not verify: {verification.message}")
        self.verification = verification


@dataclass(frozen=True)
class PruneResult:
    retention_days: int
    cutoff: datetime | None
    # Entries up to this sequence are gone (or, during a dry run, would be).
    through_sequence: int
    # Sequences this run pruned (or would prune), and rows it actually deleted.
    pruned: int
    deleted_rows: int
    dry_run: bool
    verification: VerifyResult | None = None


def audit_prune(
    *,
    retention_days: int | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    force: bool = False,
    actor: Actor | None = None,
) -> PruneResult:
    """Remove entries older than `retention_days` (default SIMPLETUNER_AUDIT_RETENTION_DAYS).

    0 days keeps everything. Raises AuditPruneRefused when the entries to remove do not
    verify, unless `force` (the `audit.pruned` entry then says so). Safe to run twice.
    """
    days = settings.SIMPLETUNER_AUDIT_RETENTION_DAYS if retention_days is None else retention_days
    if days <= 0:
        head = head_state() or HeadState()
        return PruneResult(days, None, head.pruned_through, 0, 0, dry_run)
    cutoff = (now or timezone.now()) - timedelta(days=days)
    while True:
        head = head_state() or HeadState()
        through = _prune_boundary(head, cutoff)
        if through <= head.pruned_through:
            deleted = 0 if dry_run else _delete_through(head.pruned_through)
            return PruneResult(days, cutoff, head.pruned_through, 0, deleted, dry_run)
        try:
            verification = audit_verify(from_sequence=head.pruned_through + 1, to_sequence=through, trigger="prune")
            break
        except AuditRangeError:
            # A concurrent prune moved the start of the chain past ours: plan again from the new head.
            continue
    if not verification.ok and not force:
        raise AuditPruneRefused(verification)
    if dry_run:
        return PruneResult(days, cutoff, through, through - head.pruned_through, 0, True, verification)
    before = _anchor(through=through, cutoff=cutoff, days=days, verification=verification, actor=actor)
    return PruneResult(
        days, cutoff, through, through - before.pruned_through, _delete_through(through), False, verification
    )


def _prune_boundary(head: HeadState, cutoff: datetime) -> int:
    """The highest sequence such that it and every entry before it are older than `cutoff`.

    The lowest sequence among recent entries, not the first by time: with clocks skewed
    between hosts, no entry newer than the cutoff is ever removed.
    """
    first_recent = AuditEntry.objects.filter(sequence__gt=head.pruned_through, timestamp__gte=cutoff).aggregate(
        first=Min("sequence")
    )["first"]
    boundary = head.last_sequence if first_recent is None else first_recent - 1
    return min(boundary, head.last_sequence)


def _anchor(*, through: int, cutoff: datetime, days: int, verification: VerifyResult, actor: Actor | None) -> HeadState:
    """Record the new start of the chain in the signed head, and audit the prune."""
    key = audit_key()
    with transaction.atomic():
        row = head_locked()
        head = head_verified(row, key)
        if through <= head.pruned_through:  # a concurrent prune got here first
            return replace(head, pruned_through=through)
        anchor_sequence, anchor_mac = head.anchor_sequence, head.anchor_mac
        if through > head.anchor_sequence:
            mac = AuditEntry.objects.filter(sequence=through).values_list("mac", flat=True).first()
            if mac is None:
                raise AuditChainError(f"entry #{through} is missing, so the chain cannot be anchored after it")
            anchor_sequence, anchor_mac = through, mac
        new = replace(head, anchor_sequence=anchor_sequence, anchor_mac=anchor_mac, pruned_through=through)
        head_sign(row, new, key)
        audit_record(
            event_type=events.AUDIT_PRUNED,
            actor=actor or Actor(),
            target_type="audit_chain",
            action="prune",
            details={
                "through_sequence": through,
                "pruned": through - head.pruned_through,
                "retention_days": days,
                "cutoff": canonical_timestamp(cutoff),
                "anchor_sequence": anchor_sequence,
                "anchor_mac": anchor_mac,
                "verified": verification.ok,
                "verification_failure": verification.reason,
            },
        )
    return head


def _delete_through(through: int) -> int:
    """Delete rows up to `through` in short transactions, so writers are never held long."""
    lowest = AuditEntry.objects.filter(sequence__lte=through).aggregate(lowest=Min("sequence"))["lowest"]
    if lowest is None:
        return 0
    deleted, upper = 0, lowest - 1
    while upper < through:
        upper = min(upper + DELETE_BATCH, through)
        with transaction.atomic():
            deleted += AuditEntry.objects.retention_delete(through_sequence=upper)
    return deleted
