"""Everyone fetches their own results (issue 18 item 7): every user's API key is a read-only S3
credential for the buckets of the jobs they may see. Researchers and viewers read their own
jobs' buckets, leads and admins every bucket; no API key writes. Stock boto3, live server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import botocore.exceptions
import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone

from cloudops.apikeys import api_key_create
from providers.config import provider_config_get
from providers.models import Job, JobStatus
from storage.credentials import Credential, job_credential
from tests.governance.conftest import in_group
from tests.storage.conftest import Endpoint, bucket_of, client_for, expire, objects_on_disk


def _code(call, *args, **kwargs) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(*args, **kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def job_of(endpoint: Endpoint, s3) -> Callable[..., Credential]:  # type: ignore[no-untyped-def]
    """A running `local` job of `owner` that uploaded `model.bin` (its upload credential)."""
    provider_config_get("local")

    def make(owner: AbstractUser, body: bytes = b"weights") -> Credential:
        job = Job.objects.create(owner=owner, provider="local", status=JobStatus.RUNNING)
        credential = job_credential(job.upload_token)
        assert credential is not None
        client_for(s3, endpoint, credential).put_object(Bucket=job.id, Key="model.bin", Body=body)
        return credential

    return make


def _key_client(s3, endpoint: Endpoint, user: AbstractUser):  # type: ignore[no-untyped-def]
    api_key, raw = api_key_create(owner=user, name="downloads")
    return s3(endpoint, api_key.prefix, raw)


def _assert_reads_only(client, mine: str, theirs: str) -> None:  # type: ignore[no-untyped-def]
    assert client.get_object(Bucket=mine, Key="model.bin")["Body"].read() == b"weights"
    assert [o["Key"] for o in client.list_objects_v2(Bucket=mine)["Contents"]] == ["model.bin"]
    assert client.head_object(Bucket=mine, Key="model.bin")["ContentLength"] == 7
    for call, kwargs in [
        (client.get_object, {"Key": "model.bin"}),
        (client.head_object, {"Key": "model.bin"}),
        (client.list_objects_v2, {}),
    ]:
        code = _code(call, Bucket=theirs, **kwargs)
        assert code in {("AccessDenied", 403), ("403", 403)}, (call, code)  # HEAD has no body


def _assert_writes_nothing(client, bucket: str) -> None:  # type: ignore[no-untyped-def]
    assert _code(client.put_object, Bucket=bucket, Key="planted", Body=b"x") == ("AccessDenied", 403)
    assert _code(client.delete_object, Bucket=bucket, Key="model.bin") == ("AccessDenied", 403)
    assert _code(client.create_multipart_upload, Bucket=bucket, Key="big") == ("AccessDenied", 403)
    source = {"Bucket": bucket, "Key": "model.bin"}
    assert _code(client.copy_object, Bucket=bucket, Key="copy", CopySource=source) == ("AccessDenied", 403)
    assert objects_on_disk(bucket) == ["model.bin"]


def test_a_researchers_key_reads_their_own_jobs_buckets_only(endpoint, s3, job_of, alice, bob) -> None:
    mine, theirs = job_of(alice), job_of(bob)
    client = _key_client(s3, endpoint, alice)
    assert [b["Name"] for b in client.list_buckets()["Buckets"]] == [bucket_of(mine)]
    _assert_reads_only(client, bucket_of(mine), bucket_of(theirs))
    _assert_writes_nothing(client, bucket_of(mine))
    _assert_writes_nothing(client, bucket_of(theirs))


def test_a_viewers_key_reads_their_own_jobs_buckets_only(http_server, s3, job_of, make_user, bob) -> None:
    vera = in_group(make_user("vera"), "viewer")
    mine, theirs = job_of(vera), job_of(bob)
    client = _key_client(s3, http_server, vera)
    assert [b["Name"] for b in client.list_buckets()["Buckets"]] == [bucket_of(mine)]
    _assert_reads_only(client, bucket_of(mine), bucket_of(theirs))
    _assert_writes_nothing(client, bucket_of(mine))


@pytest.mark.parametrize("group", ["lead", "admin"])
def test_leads_and_admins_keys_read_every_bucket_and_write_none(http_server, s3, job_of, make_user, alice, bob, group):  # type: ignore[no-untyped-def]
    reader = in_group(make_user("reader"), group)
    first, second = job_of(alice), job_of(bob)
    client = _key_client(s3, http_server, reader)
    assert [b["Name"] for b in client.list_buckets()["Buckets"]] == sorted([bucket_of(first), bucket_of(second)])
    for credential in (first, second):
        assert client.get_object(Bucket=bucket_of(credential), Key="model.bin")["Body"].read() == b"weights"
        _assert_writes_nothing(client, bucket_of(credential))


def test_an_owner_reads_the_outputs_after_the_jobs_own_credentials_ended(http_server, s3, job_of, alice) -> None:
    credential = job_of(alice)
    expire(credential, timezone.now() - timedelta(seconds=1))
    job_client = client_for(s3, http_server, credential)
    assert _code(job_client.get_object, Bucket=bucket_of(credential), Key="model.bin") == ("AccessDenied", 403)
    client = _key_client(s3, http_server, alice)
    assert client.get_object(Bucket=bucket_of(credential), Key="model.bin")["Body"].read() == b"weights"


def test_an_own_job_without_uploads_lists_empty_and_unknown_buckets_are_denied(http_server, s3, alice) -> None:
    job = Job.objects.create(owner=alice, provider="local", status=JobStatus.RUNNING)
    client = _key_client(s3, http_server, alice)
    assert client.list_objects_v2(Bucket=job.id)["KeyCount"] == 0
    # Not NoSuchBucket: a bucket that is no job of yours does not say whether it exists.
    assert _code(client.list_objects_v2, Bucket="job-nosuchjob") == ("AccessDenied", 403)


def test_a_key_reads_what_its_user_may_see_now(http_server, s3, job_of, make_user, alice) -> None:
    """Roles are read at each request: a lead removed from the group reads only their own again."""
    lena = in_group(make_user("lena"), "lead")
    theirs = job_of(alice)
    client = _key_client(s3, http_server, lena)
    assert client.get_object(Bucket=bucket_of(theirs), Key="model.bin")["Body"].read() == b"weights"
    lena.groups.clear()
    assert _code(client.get_object, Bucket=bucket_of(theirs), Key="model.bin") == ("AccessDenied", 403)
