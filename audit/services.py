"""Writing audit entries: the one function every feature calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from audit.models import AuditEntry, AuditHead


@dataclass(frozen=True)
class Actor:
    username: str = ""
    api_key: str = ""
    ip: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest | None) -> Actor:
        if request is None:
            return cls()
        # Imported here: cloudops.net needs settings, and audit must stay importable early.
        from cloudops.net import client_ip

        user = getattr(request, "user", None)
        username = user.get_username() if user is not None and user.is_authenticated else ""
        auth = getattr(request, "auth", None)
        api_key = getattr(auth, "prefix", "") or ""
        return cls(username=username, api_key=api_key, ip=client_ip(request))


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

    Appends take the lock on the AuditHead row, so sequences never fork across processes;
    the cost is that audit writes are serialised, which is fine at audit volumes.
    """
    who = actor or Actor.from_request(request)
    with transaction.atomic():
        head, _ = AuditHead.objects.select_for_update().get_or_create(pk=1)
        head.last_sequence += 1
        head.save(update_fields=["last_sequence"])
        return AuditEntry.objects.create(
            sequence=head.last_sequence,
            event_type=event_type,
            actor_username=who.username[:150],
            actor_api_key=who.api_key[:32],
            actor_ip=who.ip[:45],
            target_type=target_type,
            target_id=str(target_id)[:128],
            action=action,
            details=details or {},
        )
