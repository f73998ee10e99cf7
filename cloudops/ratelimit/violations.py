"""Auditing refused requests without letting a flood flood the audit trail.

The first refusal of an IP in a window writes one `rate_limited` entry; repeats inside the
same window are only counted (simpletuner_rate_limit_violations_total). The gate is itself a
limit of 1 per IP per window in the state backend, so it holds across processes.
"""

from __future__ import annotations

from django.http import HttpRequest

from cloudops import audit_events as events
from cloudops import auditing
from cloudops.auditing import Actor, user_agent
from cloudops.ratelimit.backends import state_backend
from cloudops.ratelimit.backends.base import INTERNAL_PREFIX, BackendUnavailable, Decision
from cloudops.ratelimit.rules import Rule
from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.ratelimit")


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
        "user_agent": user_agent(request),
        "rule": rule.pattern or "default",
        "limit": rule.calls,
        "period_seconds": rule.period,
        "note": f"Further refusals of this IP in the next {rule.period:g}s are counted, not audited.",
    }
    try:
        auditing.record(
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
