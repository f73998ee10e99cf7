"""Jobs' upload credentials as S3 credentials: scope, grace period, provider switch, progress."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import botocore.exceptions
import httpx
import pytest
from django.conf import settings
from django.utils import timezone

from audit.models import AuditEntry
from providers.config import provider_config_get
from providers.credentials import job_upload_bearer, job_upload_credentials, job_upload_secret
from providers.models import Job, JobStatus
from providers.selectors import job_output_root
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
    assert _code(client.get_object, Bucket=job.id, Key="final.safetensors") == "AccessDenied"
    assert objects_on_disk(job.id) == ["final.safetensors"]


def test_the_wrong_secret_for_a_job_token_is_refused(http_server, s3, job) -> None:
    client = s3(http_server, job.upload_token, job_upload_secret(job) + "x")
    assert _code(client.put_object, Bucket=job.id, Key="k", Body=b"x") == "SignatureDoesNotMatch"


def test_the_legacy_upload_token_header_works_for_a_job(http_server, job) -> None:
    url = f"{http_server.url}/{job.id}/logs/train.log"
    token = job_upload_bearer(job.upload_token)
    assert httpx.put(url, content=b"step 1\n", headers={"X-Upload-Token": token}).status_code == 200
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


def test_the_api_and_the_s3_endpoint_agree_where_each_jobs_outputs_live(
    http_server, s3, job, tmp_path: Path, alice, alice_client, staff_client
) -> None:
    config = provider_config_get("local")
    config.s3_output_path = str(tmp_path / "elsewhere")
    config.save()
    # A job whose provider has no configuration row keeps its outputs in the default root.
    orphan = Job.objects.create(owner=alice, provider="retired", status=JobStatus.COMPLETED)
    _client(s3, http_server, job).put_object(Bucket=job.id, Key="a.bin", Body=b"x")
    stored = tmp_path / "elsewhere" / job.id
    assert (stored / "a.bin").read_bytes() == b"x"
    effective = staff_client.get("/api/cloud/providers/local").json()["provider"]["effective"]
    assert effective["s3_output_path"] == str(tmp_path / "elsewhere")
    assert alice_client.get(f"/api/cloud/jobs/{job.id}").json()["job"]["output"]["path"] == str(stored)
    listed = {j["id"]: j["output"]["path"] for j in alice_client.get("/api/cloud/jobs").json()["jobs"]}
    assert listed == {job.id: str(stored), orphan.id: str(Path(settings.OUTPUTS_DIR) / orphan.id)}
    assert job_output_root(job.id) == tmp_path / "elsewhere"
    assert job_output_root(orphan.id) == job_output_root("not-a-job") == Path(settings.OUTPUTS_DIR)


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


def _refusal(call, **kwargs) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


@pytest.mark.parametrize("status", [JobStatus.CANCELLED, JobStatus.FAILED])
def test_a_cancelled_or_failed_jobs_credentials_end_at_once(http_server, s3, job, status) -> None:
    client = _client(s3, http_server, job)
    client.put_object(Bucket=job.id, Key="checkpoint-1.safetensors", Body=b"while running")
    # A multipart upload under way when the job ends: its next part is refused.
    upload = client.create_multipart_upload(Bucket=job.id, Key="checkpoint-2.safetensors")["UploadId"]
    Job.objects.filter(pk=job.pk).update(status=status, completed_at=timezone.now())
    code, message = _refusal(client.put_object, Bucket=job.id, Key="after-the-end", Body=b"x")
    assert (code, message) == ("AccessDenied", f"Upload credentials expired: job {job.id} is {status}.")
    part = {"Bucket": job.id, "Key": "checkpoint-2.safetensors", "UploadId": upload, "PartNumber": 1}
    assert _code(client.upload_part, Body=b"x" * 1024, **part) == "AccessDenied"
    assert _code(client.get_object, Bucket=job.id, Key="checkpoint-1.safetensors") == "AccessDenied"
    assert _code(client.list_objects_v2, Bucket=job.id) == "AccessDenied"
    assert _code(client.list_buckets) == "AccessDenied"
    presigned = client.generate_presigned_url(
        "get_object", Params={"Bucket": job.id, "Key": "checkpoint-1.safetensors"}
    )
    assert httpx.get(presigned).status_code == 403
    legacy = httpx.put(
        f"{http_server.url}/{job.id}/late.log",
        content=b"x",
        headers={"X-Upload-Token": job_upload_bearer(job.upload_token)},
    )
    assert legacy.status_code == 403 and "expired" in legacy.text
    assert objects_on_disk(job.id) == ["checkpoint-1.safetensors"]


def test_a_completed_jobs_credentials_last_the_default_grace_for_final_uploads(http_server, s3, job) -> None:
    assert settings.SIMPLETUNER_UPLOAD_GRACE_SECONDS == 300
    client = _client(s3, http_server, job)
    # The completion webhook arrived just before the last checkpoint's upload.
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.COMPLETED, completed_at=timezone.now() - timedelta(seconds=290)
    )
    client.put_object(Bucket=job.id, Key="final.safetensors", Body=b"raced the webhook")
    assert client.get_object(Bucket=job.id, Key="final.safetensors")["Body"].read() == b"raced the webhook"
    Job.objects.filter(pk=job.pk).update(completed_at=timezone.now() - timedelta(seconds=301))
    code, message = _refusal(client.put_object, Bucket=job.id, Key="too-late", Body=b"x")
    assert code == "AccessDenied"
    assert message == (
        f"Upload credentials expired: job {job.id} completed and its 300 s grace period for final uploads "
        "(SIMPLETUNER_UPLOAD_GRACE_SECONDS) is over."
    )
    assert objects_on_disk(job.id) == ["final.safetensors"]


def test_a_grace_of_zero_ends_a_completed_jobs_credentials_at_once(http_server, s3, job, settings) -> None:  # type: ignore[no-untyped-def]
    settings.SIMPLETUNER_UPLOAD_GRACE_SECONDS = 0
    client = _client(s3, http_server, job)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED, completed_at=timezone.now() - timedelta(seconds=1))
    assert _code(client.put_object, Bucket=job.id, Key="k", Body=b"x") == "AccessDenied"


def test_staff_still_read_an_ended_jobs_outputs(http_server, s3, job, olivia) -> None:
    from cloudops.apikeys import api_key_create

    _client(s3, http_server, job).put_object(Bucket=job.id, Key="out.bin", Body=b"kept")
    Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED, completed_at=timezone.now())
    api_key, raw = api_key_create(owner=olivia, name="ops")
    assert s3(http_server, api_key.prefix, raw).get_object(Bucket=job.id, Key="out.bin")["Body"].read() == b"kept"


def test_a_jobs_credential_is_resolved_in_one_query(job, alice, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    from storage.credentials import job_credential

    job.status, job.completed_at = JobStatus.COMPLETED, timezone.now()
    job.save()
    job_credential(job.upload_token)  # loads this process's copy of the provider's config
    with django_assert_num_queries(1):
        credential = job_credential(job.upload_token)
    assert credential is not None
    assert (credential.username, credential.job_id, credential.buckets) == ("alice", job.id, frozenset({job.id}))
    assert credential.secret == job_upload_secret(job)
    assert credential.expires_at == job.completed_at + timedelta(seconds=settings.SIMPLETUNER_UPLOAD_GRACE_SECONDS)
    assert job_credential(job.upload_token[:-1] + ("x" if job.upload_token[-1] != "x" else "y")) is None
