"""API key services: create, revoke, authenticate. Called alike by the API, admin and commands."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from cloudops import audit_events as events
from cloudops import auditing
from cloudops.keys import derive_token
from cloudops.models import ApiKey
from cloudops.roles import remember_annotations, user_annotations

KEY_SCHEME = "sk_"
_PREFIX_ALPHABET = string.ascii_letters + string.digits
_PREFIX_LEN = len(KEY_SCHEME) + 8


def _hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_secret(api_key: ApiKey) -> str:
    """The full key, recomputed from the server key (used to verify S3 signatures)."""
    return f"{api_key.prefix}_{derive_token('api-key', api_key.prefix, api_key.salt)}"


def api_key_create(*, owner: User, name: str, request: HttpRequest | None = None) -> tuple[ApiKey, str]:
    """Create a key for `owner`; returns the row and the full key, which is never shown again."""
    prefix = KEY_SCHEME + "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(8))
    api_key = ApiKey(owner=owner, name=name, prefix=prefix, salt=secrets.token_hex(16))
    raw_key = api_key_secret(api_key)
    api_key.key_hash = _hash(raw_key)
    # One transaction: if the audit trail refuses the entry, the key is not created either.
    with transaction.atomic():
        api_key.save()
        auditing.record(
            event_type=events.API_KEY_CREATED,
            request=request,
            target_type="api_key",
            target_id=api_key.prefix,
            details={"name": name, "owner": owner.get_username()},
        )
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey, request: HttpRequest | None = None) -> ApiKey:
    """Revoke a key; revoking a revoked key changes nothing and writes no audit entry."""
    with transaction.atomic():
        updated = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if updated:
            auditing.record(
                event_type=events.API_KEY_REVOKED,
                request=request,
                target_type="api_key",
                target_id=api_key.prefix,
                details={"name": api_key.name, "owner": api_key.owner.get_username()},
            )
    api_key.refresh_from_db()
    return api_key


def api_key_rename(*, api_key: ApiKey, name: str, request: HttpRequest | None = None) -> ApiKey:
    """Rename a key (admin), audited with the old and the new name. The same name writes nothing."""
    with transaction.atomic():
        previous = ApiKey.objects.select_for_update().values_list("name", flat=True).get(pk=api_key.pk)
        if previous != name:
            ApiKey.objects.filter(pk=api_key.pk).update(name=name)
            auditing.record(
                event_type=events.API_KEY_RENAMED,
                request=request,
                target_type="api_key",
                target_id=api_key.prefix,
                details={"name": name, "previous_name": previous, "owner": api_key.owner.get_username()},
            )
    api_key.name = name
    return api_key


def api_key_find(raw_key: str) -> ApiKey | None:
    """The active key matching `raw_key`, or None. Constant-time on the secret part."""
    if not raw_key.startswith(KEY_SCHEME) or len(raw_key) <= _PREFIX_LEN:
        return None
    # The owner's role comes in the same query (cloudops.permissions.user_annotations).
    extra = {f"owner{name}": expression for name, expression in user_annotations("owner").items()}
    keys = ApiKey.objects.select_related("owner").annotate(**extra)
    api_key = keys.filter(prefix=raw_key[:_PREFIX_LEN], revoked_at__isnull=True).first()
    if api_key is None or not hmac.compare_digest(api_key.key_hash, _hash(raw_key)):
        return None
    remember_annotations(api_key.owner, {name[len("owner") :]: getattr(api_key, name) for name in extra})
    if not api_key.owner.is_active:
        return None
    _touch(api_key)
    return api_key


def _touch(api_key: ApiKey) -> None:
    # A conditional UPDATE bounds last_used_at writes to one per key per resolution window.
    now = timezone.now()
    stale = now - timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_SECONDS)
    if api_key.last_used_at is None or api_key.last_used_at < stale:
        ApiKey.objects.filter(pk=api_key.pk).exclude(last_used_at__gte=stale).update(last_used_at=now)
        api_key.last_used_at = now
