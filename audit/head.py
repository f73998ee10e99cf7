"""The head checkpoint row: locking it, checking it before an append, signing it after.

Every writer of the chain (appends, re-anchoring, pruning) goes through these, under the
row lock, so the head is never re-signed over a state it did not itself verify.
"""

from __future__ import annotations

from dataclasses import replace

from audit.chain import HEAD_FIELDS, AuditChainError, AuditKey, AuditKeyMismatch, HeadState
from audit.models import AuditEntry, AuditHead
from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.audit")


def head_locked() -> AuditHead:
    """The head row, locked until the transaction ends.

    `migrate` creates it (audit/apps.py); it is only missing if someone deleted it, and the
    blank head created then is refused by head_verified while entries exist.
    """
    try:
        return AuditHead.objects.select_for_update().get(pk=1)
    except AuditHead.DoesNotExist:
        AuditHead.objects.get_or_create(pk=1)
        return AuditHead.objects.select_for_update().get(pk=1)


def head_of(row: AuditHead) -> HeadState:
    return HeadState(**{name: getattr(row, name) for name in HEAD_FIELDS})


def head_verified(row: AuditHead, key: AuditKey) -> HeadState:
    """The head, refusing to extend a chain signed with another key or a tampered head."""
    head = head_of(row)
    if head.is_genesis:
        # Checked only for the very first append: a blank head over existing rows was reset.
        if AuditEntry.objects.exists():
            raise AuditChainError(
                "the audit head checkpoint was reset while entries exist. Run `python manage.py audit_verify`, "
                "investigate, then `python manage.py audit_reanchor`."
            )
        return head
    if head.key_id != key.key_id:
        logger.error("audit key mismatch", extra={"configured_key_id": key.key_id, "chain_key_id": head.key_id})
        raise AuditKeyMismatch(
            f"the configured audit key (id {key.key_id}) is not the key that signed this chain (id {head.key_id}), "
            "or the head checkpoint was altered. Restore the previous SIMPLETUNER_AUDIT_KEY, or run "
            "`python manage.py audit_reanchor` to start a new verifiable segment."
        )
    if not head.verifies(key):
        logger.error("audit head checkpoint does not verify", extra={"last_sequence": head.last_sequence})
        raise AuditChainError(
            "the audit head checkpoint does not verify: it was altered outside the application. Run "
            "`python manage.py audit_verify`, investigate, then `python manage.py audit_reanchor`."
        )
    return head


def head_sign(row: AuditHead, head: HeadState, key: AuditKey) -> HeadState:
    signed = replace(head, key_id=key.key_id, mac="")
    signed = replace(signed, mac=signed.expected_mac(key))
    for name in HEAD_FIELDS:
        setattr(row, name, getattr(signed, name))
    row.save(update_fields=list(HEAD_FIELDS))
    return signed
