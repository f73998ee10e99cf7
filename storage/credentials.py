"""S3 credentials: who an access key id is, its secret, and what it may touch.

`credential_resolve(access_key_id)` is the one place an access key id becomes a `Credential`.
It asks the functions listed in settings.S3_CREDENTIAL_RESOLVERS in order; each knows one
kind of credential (API keys here; job upload tokens from the jobs app) and returns None for
ids that are not its own. Secrets are recomputed from the server key, never stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import F, QuerySet
from django.utils.module_loading import import_string

from cloudops.apikeys import KEY_SCHEME, api_key_secret
from cloudops.compiled import CompiledQuery
from cloudops.keys import derive_token
from cloudops.models import ApiKey
from providers.config import UnknownProvider
from providers.config_cache import provider_config_cached
from providers.credentials import job_upload_secret
from providers.models import Job, JobStatus, ProviderConfig
from providers.selectors import jobs_visible_to, sees_all_jobs
from storage import errors


@dataclass(frozen=True)
class Credential:
    """A resolved access key.

    - `read_all`: read and list every bucket (API keys of users who see every job).
    - `buckets`: buckets this credential owns: it may read and write them.
    - `read_buckets`: buckets it may only read (a presigned download's job).
    - `reads_jobs_of`: a user id: it may read, never write, the buckets of that user's jobs
      (the API keys of users who see only their own jobs).
    - `expires_at` (None: no end): after it the credential does nothing at all (a job's:
      its job ended; `expired` says how).
    - `bearer`: may also be presented as the legacy `X-Upload-Token` header, in its bearer form
      (`<access key id>.<proof>`, providers.credentials.job_upload_bearer), never as the id alone.
    """

    access_key_id: str
    secret: str
    username: str = ""
    api_key_prefix: str = ""
    read_all: bool = False
    buckets: frozenset[str] = frozenset()
    read_buckets: frozenset[str] = frozenset()
    reads_jobs_of: int | None = None
    expires_at: datetime | None = None
    expired: str = ""
    bearer: bool = False
    job_id: str = ""
    # Why this otherwise valid credential may do nothing (e.g. the provider's S3 endpoint is off).
    denied: str = ""
    # Where the credential's own buckets live (a job's: its provider's output root), if known.
    root: Path | None = None

    def can_read(self, bucket: str) -> bool:
        """May read `bucket` (one query for a credential reading its user's jobs)."""
        return bool(self.visible_buckets([bucket]))

    def can_list_buckets(self) -> bool:
        return not self.denied and (self.read_all or bool(self.buckets) or self.reads_jobs_of is not None)

    def check_current(self, now: datetime) -> None:
        """Refuse every request (read, list, write) once the credential has expired."""
        if self.expires_at is not None and now > self.expires_at:
            raise errors.AccessDenied(self.expired or "These credentials have expired.")

    def check_write(self, bucket: str, now: datetime) -> None:
        if self.denied:
            raise errors.AccessDenied(self.denied)
        if bucket not in self.buckets:
            raise errors.AccessDenied(f"This credential may not write to bucket {bucket!r}.")
        self.check_current(now)

    def visible_buckets(self, names: list[str]) -> list[str]:
        """The `names` this credential may read, in order: one query at most (the ids of the
        user's own jobs, by the owner index, for a credential reading its user's jobs)."""
        if self.denied:
            return []
        if self.read_all:
            return list(names)
        readable = self.buckets | self.read_buckets
        if self.reads_jobs_of is not None and not readable.issuperset(names):
            readable = readable | _owned(self.reads_jobs_of, names)
        return [name for name in names if name in readable]


# Up to this many names are looked up by id; more (ListBuckets over every folder on disk)
# by reading the ids of all the user's jobs, which keeps the query's parameters bounded.
_OWNED_BY_ID = 100


def _owned(user_id: int, names: list[str]) -> frozenset[str]:
    """Which of `names` are ids of jobs of `user_id`."""
    jobs = Job.objects.filter(owner_id=user_id)
    if len(names) <= _OWNED_BY_ID:
        jobs = jobs.filter(id__in=names)
    return frozenset(jobs.values_list("id", flat=True))


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

    Read-only, for the buckets of the jobs the key's user may see (jobs_visible_to): keys of
    users who see every job (providers.selectors.sees_all_jobs: staff with providers.view_job,
    leads and admins) read and list every bucket; every other key reads and lists the buckets
    of its user's own jobs. No API key writes: jobs write with their own credentials.
    """
    if not access_key_id.startswith(KEY_SCHEME):
        return None  # every API key prefix has the scheme (cloudops.apikeys): no query for a job's id
    api_key = ApiKey.objects.select_related("owner").filter(prefix=access_key_id, revoked_at__isnull=True).first()
    if api_key is None or not api_key.owner.is_active:
        return None
    read_all = sees_all_jobs(api_key.owner)
    return Credential(
        access_key_id=api_key.prefix,
        secret=api_key_secret(api_key),
        username=api_key.owner.get_username(),
        api_key_prefix=api_key.prefix,
        read_all=read_all,
        reads_jobs_of=None if read_all else api_key.owner.pk,
    )


# The access key id of presigned download links: `dl_<user id>_<job id>`.
DOWNLOAD_KEY_SCHEME = "dl_"
_DOWNLOAD_KEY_RE = re.compile(r"dl_([0-9]{1,18})_([a-z0-9][a-z0-9-]{0,62})")


def download_key_id(user_id: int, job_id: str) -> str:
    """The access key id that signs `user_id`'s download links to job `job_id`'s outputs."""
    return f"{DOWNLOAD_KEY_SCHEME}{user_id}_{job_id}"


def download_secret(access_key_id: str) -> str:
    """Its secret, derived from the server key (nothing stored); it never leaves the server,
    which signs the links (GET /api/cloud/jobs/{id}/outputs, storage.job_outputs)."""
    return derive_token("output-download", access_key_id)


def download_credential(access_key_id: str) -> Credential | None:
    """The credential of a presigned download link: reads one job's bucket, writes nothing.

    Checked again at every use: the link works only while its user is active and may still see
    the job (jobs_visible_to), and until it expires (X-Amz-Expires, checked with the signature).
    """
    match = _DOWNLOAD_KEY_RE.fullmatch(access_key_id)
    if match is None:
        return None
    user = get_user_model().objects.filter(pk=int(match[1]), is_active=True).first()
    if user is None:
        return None
    job_id = match[2]
    visible = jobs_visible_to(user).filter(pk=job_id).exists()
    return Credential(
        access_key_id=access_key_id,
        secret=download_secret(access_key_id),
        username=user.get_username(),
        read_buckets=frozenset({job_id}),
        denied="" if visible else f"User {user.get_username()!r} may no longer see job {job_id}.",
    )


def job_credential(access_key_id: str) -> Credential | None:
    """A job's upload credentials: access key id = its upload token, secret derived from it.

    The job owns one bucket, its id, and may read and write it while it is active. The
    credentials end with the job: at once when it is cancelled or fails, and
    SIMPLETUNER_UPLOAD_GRACE_SECONDS after it completed (its final uploads may race the
    completion webhook). A provider with `s3_endpoint_enabled` off denies all.
    """
    job = _JOB_BY_UPLOAD_TOKEN.first(token=access_key_id)
    if job is None:
        return None
    expires_at, expired = _job_expiry(job)
    config = _provider_config(job.provider)
    enabled = None if config is None else config.s3_endpoint_enabled
    return Credential(
        access_key_id=job.upload_token,
        secret=job_upload_secret(job),
        username=job.owner_username,  # type: ignore[attr-defined]  # the query's annotation
        buckets=frozenset({job.id}),
        expires_at=expires_at,
        expired=expired,
        bearer=True,
        job_id=job.id,
        denied=_job_denied(job, enabled),
        root=(config or ProviderConfig()).output_root,
    )


def _job_by_upload_token(token: str) -> QuerySet[Job]:
    """The columns job_credential reads, and the owner's name (the rest stay deferred)."""
    username = get_user_model().USERNAME_FIELD
    return (
        Job.objects.filter(upload_token=token)
        .only("id", "provider", "status", "upload_token", "completed_at", "updated_at")
        .annotate(owner_username=F(f"owner__{username}"))
        .order_by()[:1]
    )


# Compiled once per database (cloudops/compiled.py): every S3 request of a job resolves its key,
# and compiling this query cost as much as running it.
_JOB_BY_UPLOAD_TOKEN = CompiledQuery(Job, _job_by_upload_token, "token")


def _job_denied(job: Job, enabled: bool | None) -> str:
    if job.status == JobStatus.PENDING_APPROVAL:
        # Held by an approval rule (governance): no credentials work before it is approved.
        return f"Job {job.id} is waiting for approval; its upload credentials work once it is approved."
    return "" if enabled in (None, True) else f"The S3 endpoint is disabled for provider {job.provider!r}."


def _job_expiry(job: Job) -> tuple[datetime | None, str]:
    """When a job's credentials end, and the AccessDenied message after that."""
    if not job.is_terminal:
        return None, ""
    ended = job.completed_at or job.updated_at
    if job.status != JobStatus.COMPLETED:
        return ended, f"Upload credentials expired: job {job.id} is {job.status}."
    grace = settings.SIMPLETUNER_UPLOAD_GRACE_SECONDS
    return ended + timedelta(seconds=grace), (
        f"Upload credentials expired: job {job.id} completed and its {grace} s grace period for final "
        "uploads (SIMPLETUNER_UPLOAD_GRACE_SECONDS) is over."
    )


def _provider_config(name: str) -> ProviderConfig | None:
    """A job's provider's row: a registered provider's from this process's copy
    (providers.config_cache, no query per upload request), another's from the database."""
    try:
        return provider_config_cached(name)
    except UnknownProvider:
        return ProviderConfig.objects.filter(name=name).first()
