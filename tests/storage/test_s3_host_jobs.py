"""A provider's s3_endpoint_url: jobs are given the root of an S3 host instead of the path
mount, and that endpoint works with exactly the credentials a job receives."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from rest_framework.test import APIClient

from providers.config import provider_config_get
from providers.credentials import job_upload_credentials
from providers.models import Job, JobStatus
from tests.storage.conftest import Endpoint, objects_on_disk


def patch(client: APIClient, body: dict[str, object]) -> object:
    return client.patch("/api/cloud/providers/local", data=json.dumps(body), content_type="application/json")


def test_jobs_get_the_s3_host_endpoint_and_can_upload_through_it(
    settings,
    http_server: Endpoint,
    staff_client: APIClient,
    make_user,  # type: ignore[no-untyped-def]
) -> None:
    settings.SIMPLETUNER_S3_HOSTS = frozenset({"localhost"})
    root = http_server.base.replace("127.0.0.1", "localhost")
    response = patch(staff_client, {"s3_endpoint_url": root + "/"})
    assert response.status_code == 200, response.content  # type: ignore[attr-defined]
    assert response.json()["provider"]["effective"]["s3_endpoint_url"] == root  # type: ignore[attr-defined]
    job = Job.objects.create(owner=make_user("trainer"), provider="local", status=JobStatus.RUNNING)
    creds = job_upload_credentials(job)
    assert creds.endpoint_url == root
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=creds.endpoint_url,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        region_name=creds.region,
        config=Config(retries={"max_attempts": 1}),
    )
    client.put_object(Bucket=creds.bucket, Key="checkpoints/last.safetensors", Body=b"w")
    assert objects_on_disk(creds.bucket) == ["checkpoints/last.safetensors"]


def test_without_the_option_jobs_get_the_path_mount(settings, make_user) -> None:  # type: ignore[no-untyped-def]
    settings.SIMPLETUNER_PUBLIC_URL = "https://st.example.com"
    provider_config_get("local")
    job = Job.objects.create(owner=make_user("trainer"), provider="local", status=JobStatus.RUNNING)
    assert job_upload_credentials(job).endpoint_url == "https://st.example.com/api/cloud/storage"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("https://api.example.com", "not in SIMPLETUNER_S3_HOSTS"),
        ("s3.example.com", "not an absolute http(s) URL"),
        ("https://s3.example.com/?x=1", "query string"),
    ],
)
def test_a_root_not_served_as_s3_is_refused_naming_the_field(
    settings,
    staff_client: APIClient,
    value: str,
    reason: str,  # type: ignore[no-untyped-def]
) -> None:
    settings.SIMPLETUNER_S3_HOSTS = frozenset({"s3.example.com"})
    response = patch(staff_client, {"s3_endpoint_url": value})
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert "s3_endpoint_url" in response.json()["errors"]  # type: ignore[attr-defined]
    assert reason in response.json()["detail"]  # type: ignore[attr-defined]
    assert provider_config_get("local").s3_endpoint_url == ""


def test_a_path_endpoint_or_an_s3_host_root_is_accepted(settings, staff_client: APIClient) -> None:  # type: ignore[no-untyped-def]
    settings.SIMPLETUNER_S3_HOSTS = frozenset({"s3.example.com"})
    assert patch(staff_client, {"s3_endpoint_url": "https://S3.example.com"}).status_code == 200  # type: ignore[attr-defined]
    assert patch(staff_client, {"s3_endpoint_url": "https://st.example.com/api/cloud/storage"}).status_code == 200  # type: ignore[attr-defined]
    assert provider_config_get("local").s3_endpoint_url == "https://st.example.com/api/cloud/storage"
