"""The storage rule on the real S3 endpoint (uvicorn + our streaming ASGI handler): the
middleware runs there too, and a job's uploads count against its own credential."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import boto3
import httpx
import pytest
from botocore.config import Config
from django.conf import settings as django_settings

from cloudops.ratelimit.limiter import s3_rate_limiter
from providers.config import provider_config_get
from providers.credentials import job_upload_bearer, job_upload_secret
from providers.models import Job, JobStatus
from tests.storage.server import serving

pytestmark = pytest.mark.django_db(transaction=True)

# The test client connects from loopback, a trusted proxy, so it can play remote clients.
PROXY_FOR = "203.0.113.40"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving() as url:
        yield url


@pytest.fixture(autouse=True)
def _storage(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    settings.SIMPLETUNER_S3_MIN_FREE_BYTES = 0
    yield
    shutil.rmtree(django_settings.OUTPUTS_DIR, ignore_errors=True)


@pytest.fixture
def jobs(alice) -> list[Job]:  # type: ignore[no-untyped-def]
    provider_config_get("local")
    return [Job.objects.create(owner=alice, provider="local", status=JobStatus.RUNNING) for _ in range(2)]


def put(server: str, job: Job | None, key: str, token: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": PROXY_FOR}
    if job is not None or token:
        headers["X-Upload-Token"] = token or job_upload_bearer(job.upload_token)  # type: ignore[union-attr]
    bucket = job.id if job is not None else "nobody"
    return httpx.put(f"{server}/api/cloud/storage/{bucket}/{key}", content=b"part", headers=headers)


@pytest.mark.slow
def test_each_job_credential_has_its_own_budget_behind_one_ip(server: str, jobs: list[Job]) -> None:
    first, second = jobs
    for n in range(50):
        response = put(server, first, f"parts/{n}")
        assert response.status_code == 200, response.text
        assert response.headers["X-RateLimit-Limit"] == "50"
        assert response.headers["X-RateLimit-Remaining"] == str(49 - n)
    refused = put(server, first, "parts/50")
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Rate limit exceeded. Please try again later."}
    assert int(refused.headers["Retry-After"]) >= 1
    # Another job uploading from the same address is not starved by the first one.
    assert put(server, second, "parts/0").status_code == 200
    # Nor is the address itself: unauthenticated requests count on the IP's own budget.
    assert put(server, None, "x").status_code == 403
    assert s3_rate_limiter.get_usage_sync(f"ip:{PROXY_FOR}")["count"] == 1


def test_invented_access_key_ids_stay_on_the_ip_budget(server: str) -> None:
    for n in range(3):
        response = put(server, None, "x", token=f"made-up-{n}")
        assert response.status_code == 403
    assert s3_rate_limiter.get_usage_sync(f"ip:{PROXY_FOR}")["count"] == 3


def test_an_upload_token_without_its_proof_stays_on_the_ip_budget(server: str, jobs: list[Job]) -> None:
    """The access key id alone (as a presigned URL shows it) is no upload token any more."""
    job = jobs[0]
    assert put(server, job, "x", token=job.upload_token).status_code == 403
    assert s3_rate_limiter.get_usage_sync(f"ip:{PROXY_FOR}")["count"] == 1
    assert s3_rate_limiter.get_usage_sync(f"job:{job.id}")["count"] == 0


def test_sigv4_requests_count_against_the_job(server: str, jobs: list[Job]) -> None:
    job = jobs[0]
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=server + "/api/cloud/storage",
        aws_access_key_id=job.upload_token,
        aws_secret_access_key=job_upload_secret(job),
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    client.meta.events.register(
        "before-send.s3.*", lambda request, **_: request.headers.__setitem__("X-Forwarded-For", PROXY_FOR)
    )
    client.put_object(Bucket=job.id, Key="a", Body=b"1")
    client.get_object(Bucket=job.id, Key="a")
    url = client.generate_presigned_url("get_object", Params={"Bucket": job.id, "Key": "a"})
    assert httpx.get(url, headers={"X-Forwarded-For": PROXY_FOR}).status_code == 200
    assert s3_rate_limiter.get_usage_sync(f"job:{job.id}")["count"] == 3
    assert s3_rate_limiter.get_usage_sync(f"ip:{PROXY_FOR}")["count"] == 0


def test_a_custom_storage_rule_still_counts_per_job(jobs: list[Job], settings) -> None:  # type: ignore[no-untyped-def]
    settings.RATE_LIMIT_RULES = [[r"^/api/cloud/storage(/|$)", 2, 60, None]]
    first, second = jobs
    with serving() as server:  # the middleware reads its rules when the server starts
        assert put(server, first, "a").status_code == 200
        assert put(server, first, "b").headers["X-RateLimit-Remaining"] == "0"
        assert put(server, first, "c").status_code == 429
        assert put(server, second, "a").status_code == 200
