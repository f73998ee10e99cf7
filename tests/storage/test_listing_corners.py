"""Issue 17's smaller failures, replayed: max-keys=0, FetchOwner, ListBuckets' creation date,
browser-form presigned POST, and 501s logged at ERROR."""

from __future__ import annotations

import logging
import os
from datetime import UTC
from pathlib import Path

import httpx
from django.conf import settings as django_settings

from providers.models import Job
from tests.storage.conftest import bucket_of, client_for


def test_max_keys_zero_is_not_truncated(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    client.put_object(Bucket=bucket, Key="a", Body=b"x")
    v2 = client.list_objects_v2(Bucket=bucket, MaxKeys=0)
    assert v2["IsTruncated"] is False and v2["KeyCount"] == 0 and "NextContinuationToken" not in v2
    v1 = client.list_objects(Bucket=bucket, MaxKeys=0)
    assert v1["IsTruncated"] is False and "Contents" not in v1


def test_fetch_owner_lists_the_job_as_owner(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    client.put_object(Bucket=bucket, Key="a", Body=b"x")
    owned = client.list_objects_v2(Bucket=bucket, FetchOwner=True)["Contents"][0]
    assert owned["Owner"] == {"ID": bucket, "DisplayName": "trainer"}
    assert "Owner" not in client.list_objects_v2(Bucket=bucket)["Contents"][0]
    assert client.list_objects(Bucket=bucket)["Contents"][0]["Owner"]["ID"] == bucket  # v1 always, as S3
    assert cred.access_key_id not in str(owned)


def test_list_buckets_creation_date_is_the_jobs_and_does_not_move(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    created = Job.objects.get(id=bucket).created_at.astimezone(UTC).replace(microsecond=0)
    before = client.list_buckets()["Buckets"][0]["CreationDate"]  # no upload yet: no folder
    client.put_object(Bucket=bucket, Key="a", Body=b"x")
    client.put_object(Bucket=bucket, Key="dir/b", Body=b"y")
    folder = Path(django_settings.OUTPUTS_DIR) / bucket
    os.utime(folder, (2_000_000_000, 2_000_000_000))  # the folder changes as objects come and go
    after = client.list_buckets()["Buckets"][0]["CreationDate"]
    assert before == after == created


def test_a_browser_form_post_is_refused_clearly(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    form = client.generate_presigned_post(Bucket=bucket, Key="upload.bin")
    answer = httpx.post(form["url"], data=form["fields"], files={"file": ("upload.bin", b"data")})
    assert answer.status_code == 501
    assert b"<Code>NotImplemented</Code>" in answer.content and b"presigned PUT URL" in answer.content
    assert not (Path(django_settings.OUTPUTS_DIR) / bucket / "upload.bin").exists()


def test_not_implemented_and_client_errors_are_not_logged_as_errors(http_server, s3, writer, caplog) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    client.put_object(Bucket=bucket, Key="a", Body=b"x")
    caplog.set_level(logging.INFO)
    url = f"{http_server.url}/{bucket}/a?tagging"
    presigned = client.generate_presigned_url("get_object_tagging", Params={"Bucket": bucket, "Key": "a"})
    assert httpx.get(presigned).status_code == 501
    assert httpx.get(url).status_code == 403  # anonymous
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert any(r.levelno == logging.INFO and "not implemented" in r.getMessage() for r in caplog.records)
