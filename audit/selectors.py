"""Reading the audit trail (the API, the admin, health and metrics share these)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from audit.chain import HEAD_FIELDS, AuditChainError, HeadState, audit_key
from audit.models import AuditEntry, AuditHead, AuditVerification


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
    entries = AuditEntry.objects.filter(sequence__gt=_pruned_through())
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


def head_state() -> HeadState | None:
    """The head checkpoint as stored (not verified), None before the first entry."""
    row = AuditHead.objects.filter(pk=1).values(*HEAD_FIELDS).first()
    return HeadState(**row) if row else None


def _pruned_through() -> int:
    # Rows at or below this are logically gone even while a prune is still deleting them.
    return AuditHead.objects.filter(pk=1).values_list("pruned_through", flat=True).first() or 0


@dataclass(frozen=True)
class AuditTotals:
    # Entries retained now: drops when retention prunes (a gauge).
    total: int
    last_24h: int
    # Entries ever appended (the head's sequence): never decreases (a counter).
    written: int = 0


def audit_totals(*, now: datetime | None = None, head: HeadState | None = None) -> AuditTotals:
    """Entry counts without scanning the table: one head read and one index seek.

    Sequences are gap-free, so the total is the head's last sequence minus what retention
    pruned. Timestamps rise with sequences (both are assigned under the append lock), so the
    entries of the last 24 h are those from the first one at or after the cutoff to the head.
    Exact while the chain verifies; with clocks skewed between hosts the 24 h figure may be
    off by the entries written inside the skew.
    """
    head = head or head_state()
    if head is None:
        return AuditTotals(total=0, last_24h=0)
    cutoff = (now or timezone.now()) - timedelta(hours=24)
    first_recent = (
        AuditEntry.objects.filter(timestamp__gte=cutoff, sequence__gt=head.pruned_through)
        .order_by("timestamp", "sequence")
        .values_list("sequence", flat=True)
        .first()
    )
    recent = 0 if first_recent is None else max(0, head.last_sequence - first_recent + 1)
    total = max(0, head.last_sequence - head.pruned_through)
    return AuditTotals(total=total, last_24h=recent, written=head.last_sequence)


def audit_stats(*, now: datetime | None = None) -> dict[str, Any]:
    """Totals, per event type, last 24 h, oldest and newest entries, and the chain head.

    Everything but the per-type counts is O(1) in the table size; those group an index.
    """
    head = head_state()
    totals = audit_totals(now=now, head=head)
    retained = AuditEntry.objects.filter(sequence__gt=head.pruned_through if head else 0)
    by_type = retained.order_by().values_list("event_type").annotate(n=Count("id"))
    return {
        "total": totals.total,
        "last_24h": totals.last_24h,
        "by_event_type": dict(sorted(by_type)),
        "oldest": _edge(retained.order_by("sequence")),
        "newest": _edge(retained.order_by("-sequence")),
        "head": head_summary(head),
        "retention_days": settings.SIMPLETUNER_AUDIT_RETENTION_DAYS,
        "last_verification": latest_verification(),
    }


def _edge(entries: QuerySet[AuditEntry]) -> dict[str, Any] | None:
    edge = entries.values("sequence", "timestamp").first()
    return dict(edge) if edge is not None else None


def head_summary(head: HeadState | None) -> dict[str, Any]:
    """The head for display: where the chain ends and starts, and whether it verifies."""
    head = head or HeadState()
    try:
        key = audit_key()
    except AuditChainError:
        signed: bool | None = None
        configured_key_id = None
    else:
        signed = head.is_genesis or head.verifies(key)
        configured_key_id = key.key_id
    return {
        "last_sequence": head.last_sequence,
        "last_mac": head.last_mac,
        "anchor_sequence": head.anchor_sequence,
        "pruned_through": head.pruned_through,
        "key_id": head.key_id or None,
        "configured_key_id": configured_key_id,
        "signature_valid": signed,
    }


def latest_verification(*, full_only: bool = False) -> dict[str, Any] | None:
    runs = AuditVerification.objects.all()
    if full_only:
        runs = runs.filter(full=True)
    run = runs.values(
        "finished_at",
        "trigger",
        "ok",
        "reason",
        "first_bad_sequence",
        "message",
        "from_sequence",
        "to_sequence",
        "full",
        "checked",
        "duration_ms",
    ).first()
    if run is None:
        return None
    return {**run, "reason": run["reason"] or None}


@dataclass(frozen=True)
class ChainStanding:
    """What the recorded verifications say about the chain, for monitoring."""

    # False while the latest whole-chain verification failed, or any verification since it did.
    verified: bool
    # When the latest whole-chain verification finished (passed or not); None if none is kept.
    full_verified_at: datetime | None


def chain_standing() -> ChainStanding | None:
    """The chain's standing from the recorded verifications; None before the first one.

    It reads what `audit_verify` (the command, the API, the admin, prune) recorded and never
    verifies anything itself: a whole-chain verification takes about a minute per million
    entries, far too long for a scrape. A failure is cleared only by a later whole-chain
    verification that passes, so a passing range check cannot hide a failed full one. Only
    the latest KEEP_RESULTS verifications are kept: without a full one among them, any
    failure among them counts.
    """
    runs = AuditVerification.objects.order_by("-finished_at", "-id")
    full = runs.filter(full=True).values("id", "finished_at", "ok").first()
    if full is None:
        if not runs.exists():
            return None
        return ChainStanding(verified=not runs.filter(ok=False).exists(), full_verified_at=None)
    since = Q(finished_at__gt=full["finished_at"]) | Q(finished_at=full["finished_at"], id__gt=full["id"])
    failed_since = runs.filter(since, ok=False).exists()
    return ChainStanding(verified=full["ok"] and not failed_since, full_verified_at=full["finished_at"])


def latest_event_at(event_type: str) -> datetime | None:
    """When the newest entry of `event_type` was written: one seek on (event_type, sequence)."""
    return (
        AuditEntry.objects.filter(event_type=event_type)
        .order_by("-sequence")
        .values_list("timestamp", flat=True)
        .first()
    )
