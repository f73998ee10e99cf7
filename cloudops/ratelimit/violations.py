"""Auditing refused requests without letting a flood flood the audit trail.

The first refusal of an IP in a window writes one `rate_limited` entry; repeats inside the
same window are only counted (simpletuner_rate_limit_violations_total). The gate is itself a
limit of 1 per IP per window in the state backend, so it holds across processes.
"""

from __future__ import annotations

from django.http import HttpRequest

from audit import events
from audit.services import Actor, audit_record
from cloudops.ratelimit.backends.base import INTERNAL_PREFIX, BackendUnavailable, Decision
from cloudops.ratelimit.rules import Rule
from cloudops.ratelimit.state import state_backend
from cloudops.structured_logging import get_logger

logger = get_logger("cloudops.ratelimit")


def violation_record(*, request: HttpRequest, ip: str, rule: Rule, decision: Decision) -> bool:
    """Audit this refusal if it is the IP's first in the window; True if an entry was written."""
    try:
        gate = state_backend().hit(f"{INTERNAL_PREFIX}audit:{ip}", limit=1, window=rule.period, now=decision.now)
    except BackendUnavailable:
        return False
    if not gate.allowed:
        return False
    details = {
        "path": request.path[:500],
        "method": request.method,
        "user_agent": request.headers.get("User-Agent", "")[:500],
        "rule": rule.pattern or "default",
        "limit": rule.calls,
        "period_seconds": rule.period,
        "note": f"Further refusals of this IP in the next {rule.period:g}s are counted, not audited.",
    }
    try:
        audit_record(
            event_type=events.RATE_LIMITED,
            actor=Actor(ip=ip),
            target_type="endpoint",
            target_id=request.path[:200],
            action=request.method or "",
            details=details,
        )
    except Exception:
        # The 429 must go out even when the audit trail cannot be written (e.g. no key).
        logger.exception("could not audit a rate-limit violation", extra={"client_ip": ip})
        return False
    return True
