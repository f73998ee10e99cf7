"""cloudops.compiled.CompiledQuery: the ORM's SQL compiled once, run with new parameters, on
every database the server supports."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import AbstractUser
from django.db.models import QuerySet
from django.utils import timezone

from cloudops.compiled import CompiledQuery
from providers.models import Job

pytestmark = pytest.mark.django_db


def by_external_id(provider: str, external_id: str) -> QuerySet[Job]:
    return Job.objects.filter(provider=provider, external_id=external_id).order_by("-created_at", "-id")[:1]


LATEST = CompiledQuery(Job, by_external_id, "provider", "external_id")


def test_the_row_is_the_orms_with_every_field_converted(alice: AbstractUser) -> None:
    job = Job.objects.create(
        owner=alice,
        provider="replicate",
        external_id="pred-1",
        status="running",
        progress={"current": 3, "total": 10},
        cost_usd=Decimal("1.250000"),
        started_at=timezone.now(),
    )
    found = LATEST.first(provider="replicate", external_id="pred-1")
    expected = Job.objects.get(pk=job.pk)
    assert found is not None and found.pk == job.pk
    for field in Job._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name


def test_new_parameters_each_call_and_the_ordering_kept(alice: AbstractUser) -> None:
    older = Job.objects.create(owner=alice, provider="replicate", external_id="same")
    newer = Job.objects.create(
        owner=alice, provider="replicate", external_id="same", created_at=older.created_at + timedelta(seconds=1)
    )
    other = Job.objects.create(owner=alice, provider="local", external_id="else")
    assert LATEST.first(provider="replicate", external_id="same") == newer
    assert LATEST.first(provider="local", external_id="else") == other
    assert LATEST.first(provider="local", external_id="same") is None


def test_a_parameter_is_only_data(alice: AbstractUser) -> None:
    Job.objects.create(owner=alice, provider="replicate", external_id="x")
    assert LATEST.first(provider="replicate", external_id="provider' OR '1'='1") is None


def test_a_query_with_a_parameter_of_its_own_is_refused() -> None:
    fixed = CompiledQuery(Job, lambda job_id: Job.objects.filter(pk=job_id, status="running"), "job_id")
    with pytest.raises(ValueError, match="parameters other than"):
        fixed.first(job_id="anything")
