"""S3 credentials: who an access key id is, its secret, and what it may touch.

`credential_resolve(access_key_id)` is the one place an access key id becomes a `Credential`.
It asks the functions listed in settings.S3_CREDENTIAL_RESOLVERS in order; each knows one
kind of credential (API keys here; job upload tokens from the jobs app) and returns None for
ids that are not its own. Secrets are recomputed from the server key, never stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from cloudops.apikeys import api_key_secret
from cloudops.models import ApiKey
from providers.credentials import job_upload_secret
from providers.models import Job, ProviderConfig
from storage import errors


@dataclass(frozen=True)
class Credential:
    """A resolved access key.

    - `read_all`: read and list every bucket (staff API keys).
    - `buckets`: buckets this credential owns: it may read them, and write them while
      `writable_until` (None: no end) has not passed.
    - `bearer`: may also be presented alone, as the legacy `X-Upload-Token` header.
    """

    access_key_id: str
    secret: str
    username: str = ""
    api_key_prefix: str = ""
    read_all: bool = False
    buckets: frozenset[str] = frozenset()
    writable_until: datetime | None = None
    bearer: bool = False
    job_id: str = ""
    # Why this otherwise valid credential may do nothing (e.g. the provider's S3 endpoint is off).
    denied: str = ""

    def can_read(self, bucket: str) -> bool:
        return not self.denied and (self.read_all or bucket in self.buckets)

    def can_list_buckets(self) -> bool:
        return not self.denied and (self.read_all or bool(self.buckets))

    def check_write(self, bucket: str, now: datetime) -> None:
        if self.denied:
            raise errors.AccessDenied(self.denied)
        if bucket not in self.buckets:
            raise errors.AccessDenied(f"This credential may not write to bucket {bucket!r}.")
        if self.writable_until is not None and now > self.writable_until:
            raise errors.AccessDenied(
                "Upload credentials expired: the job has ended and its grace period "
                "(SIMPLETUNER_UPLOAD_GRACE_SECONDS) is over."
            )

    def visible_buckets(self, names: list[str]) -> list[str]:
        return [name for name in names if self.can_read(name)]


Resolver = Callable[[str], "Credential | None"]


@cache
def _resolver(path: str) -> Resolver:
    return import_string(path)


def credential_resolve(access_key_id: str) -> Credential | None:
    """The credential for `access_key_id`, or None if no resolver knows it."""
    if not access_key_id or len(access_key_id) > 128:
        return None
    for path in settings.S3_CREDENTIAL_RESOLVERS:
        credential = _resolver(path)(access_key_id)
        if credential is not None:
            return credential
    return None


def api_key_credential(access_key_id: str) -> Credential | None:
    """An active API key: access key id = its prefix, secret = the full key.

    Staff keys read and list every bucket. Other users' keys authenticate but own no bucket
    here; they are refused with AccessDenied rather than InvalidAccessKeyId.
    """
    api_key = ApiKey.objects.select_related("owner").filter(prefix=access_key_id, revoked_at__isnull=True).first()
    if api_key is None or not api_key.owner.is_active:
        return None
    return Credential(
        access_key_id=api_key.prefix,
        secret=api_key_secret(api_key),
        username=api_key.owner.get_username(),
        api_key_prefix=api_key.prefix,
        read_all=api_key.owner.is_staff,
    )


def job_credential(access_key_id: str) -> Credential | None:
    """A job's upload credentials: access key id = its upload token, secret derived from it.

    The job owns one bucket, its id. It may write there while it is active and for
    SIMPLETUNER_UPLOAD_GRACE_SECONDS after it ended (final checkpoints arrive after the last
    status webhook), then only read. A provider with `s3_endpoint_enabled` off denies all.
    """
    job = Job.objects.select_related("owner").filter(upload_token=access_key_id).first()
    if job is None:
        return None
    writable_until = None
    if job.is_terminal:
        ended = job.completed_at or job.updated_at
        writable_until = ended + timedelta(seconds=settings.SIMPLETUNER_UPLOAD_GRACE_SECONDS)
    enabled = ProviderConfig.objects.filter(name=job.provider).values_list("s3_endpoint_enabled", flat=True).first()
    return Credential(
        access_key_id=job.upload_token,
        secret=job_upload_secret(job),
        username=job.owner.get_username(),
        buckets=frozenset({job.id}),
        writable_until=writable_until,
        bearer=True,
        job_id=job.id,
        denied="" if enabled in (None, True) else f"The S3 endpoint is disabled for provider {job.provider!r}.",
    )
