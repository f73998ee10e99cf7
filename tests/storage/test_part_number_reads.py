"""GetObject and HeadObject with `partNumber`: one part of a multipart object, 206 with
Content-Range and x-amz-mp-parts-count, as S3 answers (the AWS CLI's `--part-number` too)."""

from __future__ import annotations

import os
from pathlib import Path

import botocore.exceptions
import httpx
import pytest

from storage import signing
from tests.storage.conftest import bucket_of, client_for
from tests.storage.raw import signed_headers
from tests.storage.test_aws_cli import AWS, _aws

MiB = 1024 * 1024
# Unequal parts on purpose: the boundaries are not a multiple of one part size.
PART_SIZES = (6 * MiB, 5 * MiB, 5 * MiB, 1234)


def _upload(client, bucket: str, key: str) -> list[bytes]:  # type: ignore[no-untyped-def]
    parts = [os.urandom(size) for size in PART_SIZES]
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    listed = []
    for number, data in enumerate(parts, start=1):
        etag = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data)["ETag"]
        listed.append({"PartNumber": number, "ETag": etag})
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed})
    return parts


def _error(call) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value.response["ResponseMetadata"]["HTTPStatusCode"], caught.value.response["Error"]["Code"]


def test_get_object_with_part_number_returns_that_part(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    parts = _upload(client, bucket, "ckpt/model.bin")
    total = sum(PART_SIZES)
    got = client.get_object(Bucket=bucket, Key="ckpt/model.bin", PartNumber=2)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["Body"].read() == parts[1]
    assert got["ContentRange"] == f"bytes {6 * MiB}-{11 * MiB - 1}/{total}"
    assert got["PartsCount"] == 4
    # A downloader that fetches every part by number and joins them gets the object once.
    joined = b"".join(
        client.get_object(Bucket=bucket, Key="ckpt/model.bin", PartNumber=n)["Body"].read() for n in range(1, 5)
    )
    assert joined == b"".join(parts)


def test_head_object_with_part_number_gives_the_part_size_and_count(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    _upload(client, bucket, "m.bin")
    head = client.head_object(Bucket=bucket, Key="m.bin", PartNumber=4)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert head["ContentLength"] == 1234
    assert head["PartsCount"] == 4
    assert head["ContentRange"] == f"bytes {16 * MiB}-{16 * MiB + 1233}/{sum(PART_SIZES)}"
    assert "PartsCount" not in client.head_object(Bucket=bucket, Key="m.bin")


def test_a_part_past_the_last_is_416_invalid_part_number(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    _upload(client, bucket, "m.bin")
    assert _error(lambda: client.get_object(Bucket=bucket, Key="m.bin", PartNumber=5)) == (416, "InvalidPartNumber")
    assert _error(lambda: client.head_object(Bucket=bucket, Key="m.bin", PartNumber=5))[0] == 416


def test_part_one_of_a_single_request_object_is_the_whole_object(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    client.put_object(Bucket=bucket, Key="small.txt", Body=b"hello")
    got = client.get_object(Bucket=bucket, Key="small.txt", PartNumber=1)
    assert got["Body"].read() == b"hello"
    assert got["ContentRange"] == "bytes 0-4/5"
    assert "PartsCount" not in got
    assert _error(lambda: client.get_object(Bucket=bucket, Key="small.txt", PartNumber=2)) == (
        416,
        "InvalidPartNumber",
    )


def test_part_number_with_a_range_or_out_of_bounds_is_a_clear_400(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    client.put_object(Bucket=bucket, Key="k", Body=b"hello")
    assert _error(lambda: client.get_object(Bucket=bucket, Key="k", PartNumber=1, Range="bytes=0-1")) == (
        400,
        "InvalidRequest",
    )
    for bad in ("0", "10001", "two"):
        url = f"{http_server.url}/{bucket}/k?partNumber={bad}"
        response = httpx.get(url, headers=signed_headers("GET", url, cred, signing.UNSIGNED_PAYLOAD))
        assert response.status_code == 400, bad
        assert "<Code>InvalidArgument</Code>" in response.text and "Part number" in response.text


@pytest.mark.slow
def test_aws_s3api_get_object_part_number(http_server, s3, writer, tmp_path: Path) -> None:
    if not Path(AWS).exists():
        pytest.fail("the AWS CLI is required (requirements-dev.txt installs awscli)")
    cred = writer()
    bucket = bucket_of(cred)
    parts = _upload(client_for(s3, http_server, cred), bucket, "model.bin")
    out = tmp_path / "part2"
    args = ("s3api", "get-object", "--bucket", bucket, "--key", "model.bin", "--part-number", "2", str(out))
    done = _aws(http_server, cred.access_key_id, cred.secret, tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == parts[1]
    assert '"PartsCount": 4' in done.stdout
