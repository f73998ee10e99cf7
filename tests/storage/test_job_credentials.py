"""Jobs' upload credentials as S3 credentials: scope, grace period, provider switch, progress."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import botocore.exceptions
import httpx
import pytest
from django.utils import timezone

from audit.models import AuditEntry
from providers.config import provider_config_get
from providers.credentials import job_upload_credentials, job_upload_secret
from providers.models import Job, JobStatus
from tests.storage.conftest import objects_on_disk


@pytest.fixture
def job(alice) -> Job:  # type: ignore[no-untyped-def]
    provider_config_get("local")
    return Job.objects.create(owner=alice, provider="local", status=JobStatus.RUNNING)


def _client(s3, endpoint, job: Job):  # type: ignore[no-untyped-def]
    return s3(endpoint, job.upload_token, job_upload_secret(job))


def _code(call, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"]


def test_a_running_job_uploads_to_its_own_bucket_and_progress_is_counted(endpoint, s3, job, alice_client) -> None:
    client = _client(s3, endpoint, job)
    client.put_object(Bucket=job.id, Key="samples/0.png", Body=b"x" * 1000)
    client.put_object(Bucket=job.id, Key="checkpoints/last.safetensors", Body=b"y" * 5000)
    job.refresh_from_db()
    assert (job.upload_objects, job.upload_bytes) == (2, 6000)
    assert job.last_upload_at is not None
    body = alice_client.get(f"/api/cloud/jobs/{job.id}").json()
    progress = body.get("job", body)["upload_progress"]
    assert progress["files"] == 2 and progress["bytes"] == 6000 and progress["last_upload_at"]
    entries = AuditEntry.objects.filter(event_type="storage.upload", target_type="job", target_id=job.id)
    assert entries.count() == 2
    assert entries.first().actor_username == "alice"
    assert objects_on_disk(job.id) == ["checkpoints/last.safetensors", "samples/0.png"]


def test_a_job_cannot_write_or_read_another_jobs_bucket(endpoint, s3, job, alice) -> None:
    other = Job.objects.create(owner=alice, provider="local", status=JobStatus.RUNNING)
    _client(s3, endpoint, other).put_object(Bucket=other.id, Key="k", Body=b"x")
    client = _client(s3, endpoint, job)
    assert _code(client.put_object, Bucket=other.id, Key="k2", Body=b"x") == "AccessDenied"
    assert _code(client.get_object, Bucket=other.id, Key="k") == "AccessDenied"
    assert [b["Name"] for b in client.list_buckets()["Buckets"]] == [job.id]
    assert objects_on_disk(other.id) == ["k"]


def test_a_finished_job_writes_during_the_grace_period_then_gets_access_denied(http_server, s3, job, settings) -> None:
    settings.SIMPLETUNER_UPLOAD_GRACE_SECONDS = 600
    client = _client(s3, http_server, job)
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.COMPLETED, completed_at=timezone.now() - timedelta(seconds=60)
    )
    client.put_object(Bucket=job.id, Key="final.safetensors", Body=b"late but in time")
    Job.objects.filter(pk=job.pk).update(completed_at=timezone.now() - timedelta(seconds=601))
    assert _code(client.put_object, Bucket=job.id, Key="too-late", Body=b"x") == "AccessDenied"
    assert _code(client.create_multipart_upload, Bucket=job.id, Key="too-late") == "AccessDenied"
    assert client.get_object(Bucket=job.id, Key="final.safetensors")["Body"].read() == b"late but in time"
    assert objects_on_disk(job.id) == ["final.safetensors"]


def test_the_wrong_secret_for_a_job_token_is_refused(http_server, s3, job) -> None:
    client = s3(http_server, job.upload_token, job_upload_secret(job) + "x")
    assert _code(client.put_object, Bucket=job.id, Key="k", Body=b"x") == "SignatureDoesNotMatch"


def test_the_legacy_upload_token_header_works_for_a_job(http_server, job) -> None:
    url = f"{http_server.url}/{job.id}/logs/train.log"
    assert httpx.put(url, content=b"step 1\n", headers={"X-Upload-Token": job.upload_token}).status_code == 200
    job.refresh_from_db()
    assert job.upload_objects == 1


def test_a_provider_with_the_s3_endpoint_disabled_gets_access_denied(http_server, s3, job) -> None:
    config = provider_config_get("local")
    config.s3_endpoint_enabled = False
    config.save()
    client = _client(s3, http_server, job)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.put_object(Bucket=job.id, Key="k", Body=b"x")
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    assert "disabled" in caught.value.response["Error"]["Message"]


def test_objects_land_under_the_providers_s3_output_path(http_server, s3, job, tmp_path: Path, olivia) -> None:
    config = provider_config_get("local")
    config.s3_output_path = str(tmp_path / "elsewhere")
    config.save()
    _client(s3, http_server, job).put_object(Bucket=job.id, Key="a/b.bin", Body=b"moved")
    assert (tmp_path / "elsewhere" / job.id / "a" / "b.bin").read_bytes() == b"moved"
    from cloudops.apikeys import api_key_create

    api_key, raw = api_key_create(owner=olivia, name="ops")
    staff = s3(http_server, api_key.prefix, raw)
    assert job.id in [b["Name"] for b in staff.list_buckets()["Buckets"]]
    assert staff.get_object(Bucket=job.id, Key="a/b.bin")["Body"].read() == b"moved"


def test_the_credentials_a_job_receives_work_with_boto3(http_server, job) -> None:
    import boto3

    creds = job_upload_credentials(job)
    assert creds.bucket == job.id and creds.endpoint_url.endswith("/api/cloud/storage")
    client = boto3.client(
        "s3",
        endpoint_url=http_server.url,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        region_name=creds.region,
    )
    client.put_object(Bucket=creds.bucket, Key="k", Body=b"x")
    assert objects_on_disk(job.id) == ["k"]
