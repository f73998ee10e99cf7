"""Stock boto3 against the endpoint, over HTTP and HTTPS: put, get, head, ranges, delete, list."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import botocore.exceptions
import httpx
import pytest

from audit.models import AuditEntry
from tests.storage.conftest import bucket_of, client_for, objects_on_disk, temp_files


def test_put_object_stores_the_file_where_operators_expect_it(endpoint, s3, writer, settings) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    body = os.urandom(100_000)
    response = client.put_object(Bucket=bucket, Key="checkpoints/step-1/model.safetensors", Body=body)
    assert response["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    path = Path(settings.OUTPUTS_DIR) / bucket / "checkpoints" / "step-1" / "model.safetensors"
    assert path.read_bytes() == body
    assert temp_files() == []
    entry = AuditEntry.objects.get(event_type="storage.upload")
    assert entry.details["key"] == "checkpoints/step-1/model.safetensors"
    assert entry.details["size"] == len(body)
    assert entry.target_id == bucket


def test_get_and_head_return_the_bytes_etag_and_metadata(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    put = client.put_object(
        Bucket=bucket, Key="samples/a.png", Body=b"png-bytes", ContentType="image/png", Metadata={"step": "10"}
    )
    got = client.get_object(Bucket=bucket, Key="samples/a.png")
    assert got["Body"].read() == b"png-bytes"
    assert got["ETag"] == put["ETag"]
    assert got["ContentType"] == "image/png"
    assert got["Metadata"] == {"step": "10"}
    head = client.head_object(Bucket=bucket, Key="samples/a.png")
    assert head["ContentLength"] == 9
    assert head["ETag"] == put["ETag"]
    assert head["LastModified"] == got["LastModified"]


def test_ranged_get_returns_206_with_content_range(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    client.put_object(Bucket=bucket, Key="log.txt", Body=b"0123456789")
    part = client.get_object(Bucket=bucket, Key="log.txt", Range="bytes=2-5")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == "bytes 2-5/10"
    assert part["Body"].read() == b"2345"
    assert client.get_object(Bucket=bucket, Key="log.txt", Range="bytes=-3")["Body"].read() == b"789"
    assert client.get_object(Bucket=bucket, Key="log.txt", Range="bytes=7-")["Body"].read() == b"789"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.get_object(Bucket=bucket, Key="log.txt", Range="bytes=10-20")
    assert caught.value.response["Error"]["Code"] == "InvalidRange"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_conditional_get_honours_if_match_and_if_none_match(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    etag = client.put_object(Bucket=bucket, Key="k", Body=b"v")["ETag"]
    assert client.get_object(Bucket=bucket, Key="k", IfMatch=etag)["Body"].read() == b"v"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.get_object(Bucket=bucket, Key="k", IfMatch='"0000"')
    assert caught.value.response["Error"]["Code"] == "PreconditionFailed"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.get_object(Bucket=bucket, Key="k", IfNoneMatch=etag)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304


def test_missing_objects_are_no_such_key(endpoint, s3, writer) -> None:
    cred = writer()
    client = client_for(s3, endpoint, cred)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.get_object(Bucket=bucket_of(cred), Key="nope")
    assert caught.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.head_object(Bucket=bucket_of(cred), Key="nope")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_delete_object_removes_the_file_and_empty_folders(endpoint, s3, writer, settings) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    client.put_object(Bucket=bucket, Key="a/b/c.txt", Body=b"x")
    client.put_object(Bucket=bucket, Key="keep.txt", Body=b"y")
    response = client.delete_object(Bucket=bucket, Key="a/b/c.txt")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert objects_on_disk(bucket) == ["keep.txt"]
    assert not (Path(settings.OUTPUTS_DIR) / bucket / "a").exists()
    # Deleting what is not there is not an error in S3.
    assert client.delete_object(Bucket=bucket, Key="a/b/c.txt")["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_overwriting_an_object_replaces_it_whole(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    client.put_object(Bucket=bucket, Key="latest.pt", Body=b"old" * 1000)
    client.put_object(Bucket=bucket, Key="latest.pt", Body=b"new")
    assert client.get_object(Bucket=bucket, Key="latest.pt")["Body"].read() == b"new"


def test_empty_objects_work(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    client.put_object(Bucket=bucket, Key="done.flag", Body=b"")
    got = client.get_object(Bucket=bucket, Key="done.flag")
    assert got["ContentLength"] == 0
    assert got["Body"].read() == b""


def test_errors_are_s3_xml_with_a_request_id(endpoint, writer) -> None:
    response = httpx.get(f"{endpoint.url}/some-bucket/key", verify=endpoint.verify)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/xml"
    assert "<Code>AccessDenied</Code>" in response.text
    assert response.headers["x-amz-request-id"] == response.headers["X-Request-ID"]


def test_delete_objects_removes_several_keys_in_one_request(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    for key in ("a", "b", "c"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    result = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "c"}, {"Key": "../x"}]})
    assert sorted(d["Key"] for d in result["Deleted"]) == ["a", "c"]
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("../x", "InvalidArgument")]
    assert objects_on_disk(bucket) == ["b"]


def test_unsupported_operations_say_not_implemented(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    client.put_object(Bucket=bucket, Key="a", Body=b"x")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.list_multipart_uploads(Bucket=bucket)  # server-side copy works now: test_copy_objects.py
    assert caught.value.response["Error"]["Code"] == "NotImplemented"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.get_bucket_versioning(Bucket=bucket)
    assert caught.value.response["Error"]["Code"] == "NotImplemented"
    assert client.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert client.create_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
