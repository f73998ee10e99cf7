"""Read-side queries for jobs: who may see what, filters, pagination."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from providers.models import Job


def jobs_visible_to(user: AbstractBaseUser) -> QuerySet[Job]:
    """Staff see every job; everyone else only their own (others' jobs are a 404, not a 403)."""
    jobs = Job.objects.select_related("owner")
    if getattr(user, "is_staff", False):
        return jobs
    return jobs.filter(owner=user)


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    total: int
    limit: int
    offset: int


def job_list(
    *,
    user: AbstractBaseUser,
    statuses: list[str] | None = None,
    provider: str = "",
    owner: str = "",
    limit: int = 50,
    offset: int = 0,
) -> JobPage:
    jobs = jobs_visible_to(user)
    if statuses:
        jobs = jobs.filter(status__in=statuses)
    if provider:
        jobs = jobs.filter(provider=provider)
    if owner:
        jobs = jobs.filter(owner__username=owner)
    return JobPage(
        jobs=list(jobs.order_by("-created_at", "-id")[offset : offset + limit]),
        total=jobs.count(),
        limit=limit,
        offset=offset,
    )
