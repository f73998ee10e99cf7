"""Read-side queries for jobs: who may see what, filters, pagination, where their outputs live."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet, Subquery

from cloudops.permissions import has_staff_perm
from cloudops.roles import role_sees_all_jobs
from providers.config_cache import provider_configs_cached
from providers.models import Job, ProviderConfig
from providers.paging import TOTAL_COUNT_CAP, JobCursor


def sees_all_jobs(user: User) -> bool:
    """Staff holding providers.view_job, and leads and admins by role group
    (governance.roles), see every user's jobs: list, detail, logs, live events and, with an
    API key, every output bucket. Everyone else sees only their own."""
    return has_staff_perm(user, "providers.view_job") or role_sees_all_jobs(user)


def may_change_job(user: User, job: Job) -> bool:
    """Your own jobs, or anyone's with providers.change_job (e.g. cancelling them)."""
    return job.owner_id == user.pk or has_staff_perm(user, "providers.change_job")


def jobs_visible_to(user: User) -> QuerySet[Job]:
    """Every job for sees_all_jobs, else only your own (others' jobs are a 404, not a 403)."""
    jobs = Job.objects.select_related("owner")
    if sees_all_jobs(user):
        return jobs
    return jobs.filter(owner=user)


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    total: int
    # False: more than `total` jobs match (the count stops at TOTAL_COUNT_CAP).
    total_exact: bool
    limit: int
    # None when the page was asked for by cursor.
    offset: int | None
    next_cursor: JobCursor | None


def job_list(
    *,
    user: User,
    statuses: list[str] | None = None,
    provider: str = "",
    owner: str = "",
    limit: int = 50,
    offset: int = 0,
    cursor: JobCursor | None = None,
) -> JobPage:
    """A page of the jobs `user` may see, newest first, by offset or after `cursor`
    (providers.paging). One query for the page, and one more for the total only when the
    page cannot tell it (a full page, or one asked for by cursor)."""
    jobs = jobs_visible_to(user)
    if statuses:
        jobs = jobs.filter(status__in=statuses)
    if provider:
        jobs = jobs.filter(provider=provider)
    if owner:
        jobs = jobs.filter(owner__username=owner)
    ordered = jobs.order_by("-created_at", "-id")
    if cursor is not None:
        ordered = ordered.filter(_after(cursor))
    elif offset:
        ordered = ordered.filter(_from_position(ordered, offset))
    rows = list(ordered[: limit + 1])
    page, more = rows[:limit], len(rows) > limit
    if cursor is None and not more and (page or not offset):
        total, exact = offset + len(page), True
    else:
        total, exact = _capped_count(jobs)
    last = JobCursor(created_at=page[-1].created_at, id=page[-1].pk) if more else None
    return JobPage(page, total, exact, limit, None if cursor is not None else offset, last)


def _after(cursor: JobCursor) -> Q:
    # The first condition bounds the index range on every backend (an OR alone would not
    # on MariaDB); the second drops the jobs of the same instant up to the cursor's id.
    return Q(created_at__lte=cursor.created_at) & (Q(created_at__lt=cursor.created_at) | Q(id__lt=cursor.id))


def _from_position(ordered: QuerySet[Job], offset: int) -> Q:
    """The jobs from the `offset`-th on. The skipping happens in a subquery that reads only
    the ordering index (created_at, id), so the skipped jobs' rows are never read; a scalar
    subquery rather than `id IN (... LIMIT)`, which MariaDB does not support."""
    position = ordered.select_related(None)[offset : offset + 1]
    at, job_id = Subquery(position.values("created_at")), Subquery(position.values("id"))
    return Q(created_at__lte=at) & (Q(created_at__lt=at) | Q(id__lte=job_id))


def _capped_count(jobs: QuerySet[Job]) -> tuple[int, bool]:
    """(total, exact): counts an index up to TOTAL_COUNT_CAP + 1 entries, never the table."""
    counted = jobs.select_related(None).order_by().values("pk")[: TOTAL_COUNT_CAP + 1].count()
    return min(counted, TOTAL_COUNT_CAP), counted <= TOTAL_COUNT_CAP


# --- Where outputs live ------------------------------------------------------------------------


def job_output_root(job_id: str) -> Path:
    """Where job `job_id`'s outputs live (its bucket is {root}/{job id}): its provider's
    ProviderConfig.output_root, in one query. A job whose provider has no row, and a bucket
    that is no job's, have the default root."""
    provider = Job.objects.filter(id=job_id).values("provider")
    config = ProviderConfig.objects.filter(name=Subquery(provider)).only("s3_output_path").first()
    return (config or ProviderConfig()).output_root


class OutputRoots(dict[str, Path]):
    """job_output_root for every job at once, by provider name (output_roots), so a job list
    asks once rather than once per job. A provider no longer registered is read from its row
    when a job of it is shown (one query); without a row it has the default root."""

    def __missing__(self, provider: str) -> Path:
        config = ProviderConfig.objects.filter(name=provider).only("s3_output_path").first()
        self[provider] = (config or ProviderConfig(name=provider)).output_root
        return self[provider]


def output_roots() -> OutputRoots:
    """The registered providers' roots, from this process's copies of their rows
    (providers.config_cache: no query once read, read again after any change)."""
    return OutputRoots((name, config.output_root) for name, config in provider_configs_cached().items())
