"""The `audit` health component: the key, the head checkpoint, the last verification.

Cheap by design (the head, the last entry, the highest sequence: indexed single-row reads);
the full chain is verified by `audit_verify`, whose latest result is reported here.
Messages are public; specifics of an integrity problem go to `error`, which only staff see.
"""

from __future__ import annotations

import time
from typing import Any

from django.db.models import Max

from audit.chain import RECOMMENDED_KEY_LENGTH, AuditKey, AuditKeyUnavailable, HeadState, audit_key, macs_equal
from audit.models import AuditEntry
from audit.selectors import head_state, latest_verification
from cloudops.health import Component, Status, elapsed_ms, guarded

_RANK = {"healthy": 0, "degraded": 1, "unhealthy": 2}


@guarded("audit")
def check_audit() -> Component:
    started = time.perf_counter()
    try:
        key = audit_key()
    except AuditKeyUnavailable as exc:
        return Component(
            "audit",
            "unhealthy",
            "Audit key unavailable: audited actions are refused",
            elapsed_ms(started),
            error=str(exc),
        )
    head = head_state()
    last_run = latest_verification()
    findings = _key_findings(key) + _head_findings(key, head) + _verification_findings(last_run)
    worst: Status = max((status for status, _, _ in findings), key=_RANK.__getitem__, default="healthy")
    messages = [message for status, message, _ in findings if status == worst]
    errors = [error for _, _, error in findings if error]
    return Component(
        "audit",
        worst,
        "; ".join(messages) or "Audit chain head verifies",
        elapsed_ms(started),
        error="; ".join(errors) or None,
        details={"key_source": key.source, "last_verification": _last_run_summary(last_run)},
    )


Finding = tuple[Status, str, str | None]


def _key_findings(key: AuditKey) -> list[Finding]:
    """The generated key file is the embedded default, as the SQLite file is: no finding (a
    fresh install is healthy). Its real problems (unreadable, readable by others) make the
    key unavailable, which check_audit reports as unhealthy. An operator's key may be short."""
    if not key.generated and len(key.secret) < RECOMMENDED_KEY_LENGTH:
        return [("degraded", f"SIMPLETUNER_AUDIT_KEY is shorter than {RECOMMENDED_KEY_LENGTH} characters", None)]
    return []


def _head_findings(key: AuditKey, head: HeadState | None) -> list[Finding]:
    if head is None or head.is_genesis:
        return []
    refused = "Audit chain head does not verify: audited actions are refused"
    if head.key_id != key.key_id:
        return [("unhealthy", refused, f"the head was signed with key id {head.key_id}, configured is {key.key_id}")]
    if not head.verifies(key):
        return [("unhealthy", refused, "the head checkpoint's MAC does not verify: it was altered")]
    problem = _tail_problem(head)
    return [("degraded", "Audit chain tail does not match its head", problem)] if problem else []


def _tail_problem(head: HeadState) -> str | None:
    top = AuditEntry.objects.aggregate(top=Max("sequence"))["top"] or 0
    if top > head.last_sequence:
        return f"entries past the signed head #{head.last_sequence} exist (up to #{top}); run audit_verify"
    if head.last_sequence > head.anchor_sequence:
        mac = AuditEntry.objects.filter(sequence=head.last_sequence).values_list("mac", flat=True).first()
        if mac is None or not macs_equal(mac, head.last_mac):
            return f"entry #{head.last_sequence}, the head's last entry, is missing or altered; run audit_verify"
    return None


def _verification_findings(last: dict[str, Any] | None) -> list[Finding]:
    if last is None or last["ok"]:
        return []
    return [
        (
            "degraded",
            "The last audit chain verification failed",
            f"{last['reason']} at #{last['first_bad_sequence']}: {last['message']}",
        )
    ]


def _last_run_summary(last: dict[str, Any] | None) -> dict[str, Any] | None:
    if last is None:
        return None
    return {"ok": last["ok"], "finished_at": last["finished_at"], "full": last["full"]}
