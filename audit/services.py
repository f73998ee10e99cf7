"""Writing the audit trail: appending entries to the chain, re-anchoring it.

Every append runs under the row lock on the AuditHead checkpoint, so sequences and MACs
never fork across processes; the cost is that audit writes are serialised, which is fine
at audit volumes. Retention lives in audit/retention.py, verification in
audit/verification.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.http import HttpRequest
from django.utils import timezone

from audit.chain import TEXT_LIMITS, HeadState, audit_key, entry_mac, normalise_details, normalise_text
from audit.head import head_locked, head_of, head_sign, head_verified
from audit.models import AuditEntry
from cloudops import audit_events as events
from cloudops.auditing import Actor
from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.audit")


def audit_record(
    *,
    event_type: str,
    request: HttpRequest | None = None,
    actor: Actor | None = None,
    target_type: str = "",
    target_id: str | int = "",
    action: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry. The actor comes from `actor`, else from `request` (user, API key, IP).

    Fails closed: when the audit key is unavailable, is not the key that signed the chain,
    or the head checkpoint does not verify, this raises AuditChainError instead of writing
    an entry that could never be verified (or re-signing a tampered head).
    """
    who = actor or Actor.from_request(request)
    # Read before taking the lock: it may read a file or ask a secret store.
    key = audit_key()
    with transaction.atomic():
        row = head_locked()
        head = head_verified(row, key)
        fields = _entry_fields(
            sequence=head.last_sequence + 1,
            event_type=event_type,
            who=who,
            target_type=target_type,
            target_id=target_id,
            action=action,
            details=details,
        )
        mac = entry_mac(key, fields, head.last_mac)
        entry = AuditEntry.objects.create(**fields, mac=mac)
        head_sign(row, replace(head, last_sequence=entry.sequence, last_mac=mac), key)
    return entry


def _entry_fields(
    *, sequence: int, event_type: str, who: Actor, target_type: str, target_id: str | int, action: str, details: Any
) -> dict[str, Any]:
    """Field values exactly as the database will return them, so the MAC verifies later."""
    text = {
        "event_type": event_type,
        "actor_username": who.username,
        "actor_api_key": who.api_key,
        "actor_ip": who.ip,
        "target_type": target_type,
        "target_id": target_id,
        "action": action,
    }
    fields: dict[str, Any] = {name: normalise_text(value, TEXT_LIMITS[name]) for name, value in text.items()}
    fields.update(sequence=sequence, timestamp=timezone.now(), details=normalise_details(details or {}))
    return fields


def audit_reanchor(*, reason: str, actor: Actor | None = None) -> AuditEntry:
    """Start a new verifiable segment at the current end of the table, and audit it.

    For after a lost or changed key, or after an investigated incident: entries up to the
    new anchor are no longer verified (save `audit_verify --json` output first). The head
    moves past any rows beyond it, so sequences stay unique.
    """
    key = audit_key()
    with transaction.atomic():
        row = head_locked()
        old = head_of(row)
        top = AuditEntry.objects.aggregate(top=Max("sequence"))["top"] or 0
        last = max(old.last_sequence, top)
        last_mac = AuditEntry.objects.filter(sequence=last).values_list("mac", flat=True).first()
        last_mac = old.last_mac if last_mac is None else last_mac
        new = HeadState(
            last_sequence=last,
            last_mac=last_mac,
            anchor_sequence=last,
            anchor_mac=last_mac,
            pruned_through=old.pruned_through,
        )
        head_sign(row, new, key)
        details = {
            "reason": reason,
            "anchor_sequence": last,
            "previous_anchor_sequence": old.anchor_sequence,
            "previous_last_sequence": old.last_sequence,
            "previous_key_id": old.key_id,
            "previous_head_verified": old.is_genesis or old.verifies(key),
        }
        logger.warning("audit chain re-anchored at #%s", last, extra={"reason": reason})
        return audit_record(
            event_type=events.AUDIT_REANCHORED,
            actor=actor or Actor(),
            target_type="audit_chain",
            action="reanchor",
            details=details,
        )
