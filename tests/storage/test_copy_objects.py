"""Server-side copy with boto3: CopyObject (metadata directive, conditional copy headers,
conditional writes on the destination) and UploadPartCopy with ranges, and their refusals."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import botocore.exceptions
import httpx
import pytest
from django.conf import settings as django_settings

from storage import signing
from tests.storage.conftest import bucket_of, client_for, temp_files
from tests.storage.raw import signed_headers

MiB = 1024 * 1024


def _error(call) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value.response["ResponseMetadata"]["HTTPStatusCode"], caught.value.response["Error"]["Code"]


def _stored(bucket: str, key: str) -> bytes:
    return (Path(django_settings.OUTPUTS_DIR) / bucket / key).read_bytes()


def test_copy_object_copies_bytes_metadata_and_etag(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    body = os.urandom(300_000)
    put = client.put_object(
        Bucket=bucket, Key="a/src.bin", Body=body, ContentType="application/x-ckpt", Metadata={"step": "10"}
    )
    copied = client.copy_object(Bucket=bucket, Key="b/dst.bin", CopySource={"Bucket": bucket, "Key": "a/src.bin"})
    assert copied["CopyObjectResult"]["ETag"] == put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    head = client.head_object(Bucket=bucket, Key="b/dst.bin")
    assert head["ContentType"] == "application/x-ckpt" and head["Metadata"] == {"step": "10"}
    assert _stored(bucket, "b/dst.bin") == body
    assert temp_files() == []


def test_replace_directive_sets_new_metadata_even_onto_itself(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    etag = client.put_object(Bucket=bucket, Key="k", Body=b"weights", Metadata={"mtime": "1"})["ETag"]
    client.copy_object(
        Bucket=bucket,
        Key="k",
        CopySource={"Bucket": bucket, "Key": "k"},
        MetadataDirective="REPLACE",
        Metadata={"mtime": "2"},
        ContentType="text/plain",
    )
    head = client.head_object(Bucket=bucket, Key="k")
    assert head["Metadata"] == {"mtime": "2"} and head["ContentType"] == "text/plain" and head["ETag"] == etag
    assert _stored(bucket, "k") == b"weights"


def test_copy_onto_itself_without_replace_is_invalid_request(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert _error(lambda: client.copy_object(Bucket=bucket, Key="k", CopySource=f"{bucket}/k")) == (
        400,
        "InvalidRequest",
    )


def test_a_copy_of_a_multipart_object_gets_the_md5_etag_and_no_parts(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    parts = [os.urandom(5 * MiB), os.urandom(1000)]
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="CRC32C")["UploadId"]
    listed = [
        {
            "PartNumber": n,
            **client.upload_part(
                Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=n, Body=data, ChecksumAlgorithm="CRC32C"
            ),
        }
        for n, data in enumerate(parts, start=1)
    ]
    listed = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"], "ChecksumCRC32C": p["ChecksumCRC32C"]} for p in listed]
    done = client.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": listed}
    )
    assert done["ETag"].endswith('-2"')
    copied = client.copy_object(Bucket=bucket, Key="mp-copy", CopySource={"Bucket": bucket, "Key": "mp"})
    whole = b"".join(parts)
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(whole).hexdigest()}"'
    head = client.head_object(Bucket=bucket, Key="mp-copy", PartNumber=1, ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(whole) and "PartsCount" not in head
    # The composite checksum becomes the full-object CRC32C of the bytes (boto3 checks it).
    got = client.get_object(Bucket=bucket, Key="mp-copy", ChecksumMode="ENABLED")
    assert got["ChecksumType"] == "FULL_OBJECT" and got["Body"].read() == whole


def test_copy_source_conditions_answer_412(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    etag = client.put_object(Bucket=bucket, Key="src", Body=b"x")["ETag"]
    modified = client.head_object(Bucket=bucket, Key="src")["LastModified"]
    source = {"Bucket": bucket, "Key": "src"}
    failing = [
        {"CopySourceIfMatch": '"0123"'},
        {"CopySourceIfNoneMatch": etag},
        {"CopySourceIfModifiedSince": modified},
        {"CopySourceIfUnmodifiedSince": modified - timedelta(days=1)},
    ]
    for condition in failing:
        refused = _error(lambda c=condition: client.copy_object(Bucket=bucket, Key="dst", CopySource=source, **c))
        assert refused == (412, "PreconditionFailed"), condition
    assert "dst" not in [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    client.copy_object(Bucket=bucket, Key="dst", CopySource=source, CopySourceIfMatch=etag)
    assert _stored(bucket, "dst") == b"x"


def test_conditional_writes_apply_to_the_copy_destination(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    client.put_object(Bucket=bucket, Key="src", Body=b"new")
    client.put_object(Bucket=bucket, Key="dst", Body=b"kept")
    assert _error(
        lambda: client.copy_object(Bucket=bucket, Key="dst", CopySource=f"{bucket}/src", IfNoneMatch="*")
    ) == (
        412,
        "PreconditionFailed",
    )
    assert _stored(bucket, "dst") == b"kept"


def test_a_job_cannot_copy_from_another_jobs_bucket(endpoint, s3, writer) -> None:
    mine, other = writer(), writer()
    client_for(s3, endpoint, other).put_object(Bucket=bucket_of(other), Key="secret", Body=b"theirs")
    client = client_for(s3, endpoint, mine)
    source = {"Bucket": bucket_of(other), "Key": "secret"}
    assert _error(lambda: client.copy_object(Bucket=bucket_of(mine), Key="stolen", CopySource=source)) == (
        403,
        "AccessDenied",
    )
    upload_id = client.create_multipart_upload(Bucket=bucket_of(mine), Key="stolen")["UploadId"]
    refused = _error(
        lambda: client.upload_part_copy(
            Bucket=bucket_of(mine), Key="stolen", UploadId=upload_id, PartNumber=1, CopySource=source
        )
    )
    assert refused == (403, "AccessDenied")
    # Nor into it: a job writes only its own bucket.
    client_for(s3, endpoint, mine).put_object(Bucket=bucket_of(mine), Key="mine", Body=b"x")
    into = _error(lambda: client.copy_object(Bucket=bucket_of(other), Key="k", CopySource=f"{bucket_of(mine)}/mine"))
    assert into == (403, "AccessDenied")


def test_a_missing_source_is_no_such_key(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    assert _error(lambda: client.copy_object(Bucket=bucket, Key="dst", CopySource=f"{bucket}/nothing")) == (
        404,
        "NoSuchKey",
    )


def test_upload_part_copy_assembles_ranges_of_other_objects(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    body = os.urandom(7 * MiB)
    client.put_object(Bucket=bucket, Key="big", Body=body)
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="joined")["UploadId"]
    ranges = [(0, 5 * MiB - 1), (5 * MiB, 7 * MiB - 1)]
    listed = []
    for number, (first, last) in enumerate(ranges, start=1):
        result = client.upload_part_copy(
            Bucket=bucket,
            Key="joined",
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": bucket, "Key": "big"},
            CopySourceRange=f"bytes={first}-{last}",
        )["CopyPartResult"]
        assert result["ETag"] == f'"{hashlib.md5(body[first : last + 1]).hexdigest()}"'
        listed.append({"PartNumber": number, "ETag": result["ETag"]})
    client.complete_multipart_upload(Bucket=bucket, Key="joined", UploadId=upload_id, MultipartUpload={"Parts": listed})
    assert _stored(bucket, "joined") == body
    assert client.get_object(Bucket=bucket, Key="joined", PartNumber=2)["Body"].read() == body[5 * MiB :]


def test_a_bad_copy_range_is_invalid_argument(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    client.put_object(Bucket=bucket, Key="small", Body=b"0123456789")
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    for bad in ("bytes=0-10", "bytes=5-2", "bytes=-3", "0-3"):
        refused = _error(
            lambda r=bad: client.upload_part_copy(
                Bucket=bucket,
                Key="dst",
                UploadId=upload_id,
                PartNumber=1,
                CopySource=f"{bucket}/small",
                CopySourceRange=r,
            )
        )
        assert refused == (400, "InvalidArgument"), bad
    assert client.list_parts(Bucket=bucket, Key="dst", UploadId=upload_id).get("Parts", []) == []


def _raw_copy(endpoint, cred, key: str, source: str, extra: dict[str, str] | None = None) -> httpx.Response:  # type: ignore[no-untyped-def]
    url = f"{endpoint.url}/{bucket_of(cred)}/{key}"
    headers = {"x-amz-copy-source": source, **(extra or {})}
    signed = signed_headers("PUT", url, cred, signing.UNSIGNED_PAYLOAD, headers)
    return httpx.put(url, headers=signed, verify=endpoint.verify)


def test_copy_source_is_percent_decoded_and_version_null_accepted(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    client.put_object(Bucket=bucket, Key="dir/a b+é.txt", Body=b"v")
    done = _raw_copy(http_server, cred, "copy.txt", f"/{bucket}/dir/a%20b%2B%C3%A9.txt?versionId=null")
    assert done.status_code == 200, done.text
    assert b"<CopyObjectResult" in done.content and _stored(bucket, "copy.txt") == b"v"
    versioned = _raw_copy(http_server, cred, "copy2.txt", f"{bucket}/dir/a%20b%2B%C3%A9.txt?versionId=3HL4kqtJ")
    assert versioned.status_code == 400 and b"<Code>InvalidArgument</Code>" in versioned.content
    assert b"versionId=null" in versioned.content
    bad_directive = _raw_copy(
        http_server, cred, "c3", f"{bucket}/dir/a%20b%2B%C3%A9.txt", {"x-amz-metadata-directive": "MOVE"}
    )
    assert bad_directive.status_code == 400 and b"x-amz-metadata-directive" in bad_directive.content
