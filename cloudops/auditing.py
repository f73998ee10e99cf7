"""How library code records to the audit trail without importing the audit app.

The modules of cloudops/ are library code: they import no app (tests/architecture checks it).
Several of them still audit what they do (logins, API keys, rate-limit violations, metrics
configuration). They call `record(...)` here, which hands the entry to the function named by
settings.AUDIT_RECORDER (the audit app's `audit.services.audit_record`), and catch
`AuditRefused`, which the audit app raises (as AuditChainError) when it cannot write an entry
verifiably. The event names are in cloudops.audit_events, the vocabulary both sides share.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.module_loading import import_string

from cloudops import audit_events

# How much of a User-Agent header an entry keeps: enough to tell tools apart, bounded.
USER_AGENT_LIMIT = 500


class AuditRefused(Exception):
    """The audit trail cannot record an entry verifiably (no key, a wrong key, a tampered
    head): the action that needed the entry is refused, never done unrecorded."""


@dataclass(frozen=True)
class Actor:
    """Who did something: a user (by name), the API key they used, the client address."""

    username: str = ""
    api_key: str = ""
    ip: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest | None) -> Actor:
        if request is None:
            return cls()
        # Imported here: cloudops.net reads settings, and this module is imported early.
        from cloudops.net import client_ip

        user = getattr(request, "user", None)
        username = user.get_username() if user is not None and user.is_authenticated else ""
        auth = getattr(request, "auth", None)
        api_key = getattr(auth, "prefix", "") or ""
        return cls(username=username, api_key=api_key, ip=client_ip(request))


def user_agent(request: HttpRequest) -> str:
    """The request's User-Agent for an entry's `details` (the actor fields are fixed)."""
    return request.headers.get("User-Agent", "")[:USER_AGENT_LIMIT]


@cache
def _recorder() -> Any:
    return import_string(settings.AUDIT_RECORDER)


def record(**entry: Any) -> Any:
    """Append one audit entry through settings.AUDIT_RECORDER (see audit.services.audit_record
    for the fields); raises AuditRefused when it cannot be written verifiably."""
    return _recorder()(**entry)


def config_changed(
    *,
    target_type: str,
    target_id: str | int,
    action: str,
    details: dict[str, Any],
    request: HttpRequest | None = None,
    actor: Actor | None = None,
) -> Any:
    """Record a `config.changed` entry: runtime configuration (a quota, an approval rule, the
    metrics export) created, changed or deleted by `request`'s user (or `actor`)."""
    return record(
        event_type=audit_events.CONFIG_CHANGED,
        request=request,
        actor=actor,
        target_type=target_type,
        target_id=target_id,
        action=action,
        details=details,
    )
