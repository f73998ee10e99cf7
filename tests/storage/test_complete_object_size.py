"""CompleteMultipartUpload honours `x-amz-mp-object-size` (boto3's `MpuObjectSize`), as S3 does:
a size that is not the listed parts' total is 400 InvalidRequest stating both sizes, a value
that is not a size is 400 InvalidArgument naming the header. A refused Complete assembles
nothing and leaves the upload open, so the right Complete afterwards succeeds."""

from __future__ import annotations

import os

import botocore.exceptions
import pytest

from tests.storage.conftest import bucket_of, client_for, objects_on_disk

MiB = 1024 * 1024
HEADER = "x-amz-mp-object-size"


def _start(client, bucket: str, key: str, sizes: tuple[int, ...] = (5 * MiB, 1000)) -> tuple[str, bytes, list[dict]]:  # type: ignore[no-untyped-def]
    """An open upload of parts of `sizes` bytes: its id, its bytes, and its parts as Complete lists them."""
    data = [os.urandom(size) for size in sizes]
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    listed = []
    for number, body in enumerate(data, start=1):
        sent = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
        listed.append({"PartNumber": number, "ETag": sent["ETag"]})
    return upload_id, b"".join(data), listed


def _refused(call, **kwargs) -> tuple[int, str, dict]:  # type: ignore[no-untyped-def]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**kwargs)
    error = caught.value.response
    return error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"], error["Error"]


def _still_open(client, bucket: str, key: str, upload_id: str, parts: int) -> bool:  # type: ignore[no-untyped-def]
    listing = client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    return len(listing["Parts"]) == parts and objects_on_disk(bucket) == []


def _send_header(client, value: str) -> None:  # type: ignore[no-untyped-def]
    """Every CompleteMultipartUpload of `client` carries `x-amz-mp-object-size: value` as given,
    set before signing (boto3's own parameter takes only integers)."""

    def add(request, **_: object) -> None:  # type: ignore[no-untyped-def]
        request.headers[HEADER] = value

    client.meta.events.register("before-sign.s3.CompleteMultipartUpload", add)


def test_it_completes_when_the_stated_size_is_the_parts_total(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, data, listed = _start(client, bucket, "model.bin")
    client.complete_multipart_upload(
        Bucket=bucket, Key="model.bin", UploadId=upload_id, MultipartUpload={"Parts": listed}, MpuObjectSize=len(data)
    )
    assert client.get_object(Bucket=bucket, Key="model.bin")["Body"].read() == data


@pytest.mark.parametrize("stated", [0, 5 * MiB, 5 * MiB + 999, 5 * MiB + 1001, 2**63 - 1])
def test_a_stated_size_that_differs_is_invalid_request_stating_both_and_nothing_is_assembled(
    http_server, s3, writer, stated: int
) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, data, listed = _start(client, bucket, "model.bin")
    complete = {"Bucket": bucket, "Key": "model.bin", "UploadId": upload_id, "MultipartUpload": {"Parts": listed}}
    status, code, error = _refused(client.complete_multipart_upload, **complete, MpuObjectSize=stated)
    assert (status, code) == (400, "InvalidRequest")
    message = error["Message"]
    assert HEADER in message and f"states {stated} bytes" in message and f"total {len(data)} bytes" in message
    assert _still_open(client, bucket, "model.bin", upload_id, parts=2)
    client.complete_multipart_upload(**complete, MpuObjectSize=len(data))
    assert client.get_object(Bucket=bucket, Key="model.bin")["Body"].read() == data


def test_after_a_refused_size_a_complete_without_the_header_succeeds(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, data, listed = _start(client, bucket, "model.bin", sizes=(5 * MiB, 5 * MiB, 7))
    complete = {"Bucket": bucket, "Key": "model.bin", "UploadId": upload_id, "MultipartUpload": {"Parts": listed}}
    status, code, _ = _refused(client.complete_multipart_upload, **complete, MpuObjectSize=len(data) + 1)
    assert (status, code) == (400, "InvalidRequest")
    assert _still_open(client, bucket, "model.bin", upload_id, parts=3)
    done = client.complete_multipart_upload(**complete)
    assert done["ETag"].endswith('-3"')
    assert client.get_object(Bucket=bucket, Key="model.bin")["Body"].read() == data


def test_the_size_is_checked_against_the_listed_parts_not_every_uploaded_part(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, data, listed = _start(client, bucket, "model.bin", sizes=(5 * MiB, 1000))
    complete = {"Bucket": bucket, "Key": "model.bin", "UploadId": upload_id, "MultipartUpload": {"Parts": listed[:1]}}
    status, code, error = _refused(client.complete_multipart_upload, **complete, MpuObjectSize=len(data))
    assert (status, code) == (400, "InvalidRequest") and f"{5 * MiB} bytes" in error["Message"]
    client.complete_multipart_upload(**complete, MpuObjectSize=5 * MiB)
    assert client.get_object(Bucket=bucket, Key="model.bin")["Body"].read() == data[: 5 * MiB]


@pytest.mark.parametrize(
    "value", ["abc", "-1", "+5", "1.0", "0x10", "1_000", "5 5", "1e3", "9223372036854775808", "9" * 40]
)
def test_a_value_that_is_not_a_size_is_invalid_argument_naming_the_header(http_server, s3, writer, value: str) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, data, listed = _start(client, bucket, "model.bin")
    bad = client_for(s3, http_server, cred)
    _send_header(bad, value)
    complete = {"Bucket": bucket, "Key": "model.bin", "UploadId": upload_id, "MultipartUpload": {"Parts": listed}}
    status, code, error = _refused(bad.complete_multipart_upload, **complete)
    assert (status, code) == (400, "InvalidArgument")
    assert HEADER in error["Message"] and error["ArgumentName"] == HEADER
    assert _still_open(client, bucket, "model.bin", upload_id, parts=2)
    client.complete_multipart_upload(**complete)
    assert client.get_object(Bucket=bucket, Key="model.bin")["Body"].read() == data


# Past 4,300 digits int() of the whole text raises ValueError (Python's limit on converting
# long digit strings), which was a 500; the zeros do not make the number any longer.
@pytest.mark.parametrize("zeros", [3, 5000])
def test_a_size_sent_with_leading_zeros_is_still_a_size(http_server, s3, writer, zeros: int) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, data, listed = _start(client, bucket, "model.bin", sizes=(1000,))
    _send_header(client, "0" * zeros + str(len(data)))
    client.complete_multipart_upload(
        Bucket=bucket, Key="model.bin", UploadId=upload_id, MultipartUpload={"Parts": listed}
    )
    assert client.get_object(Bucket=bucket, Key="model.bin")["Body"].read() == data
