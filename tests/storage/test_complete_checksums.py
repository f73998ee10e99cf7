"""The checksums a CompleteMultipartUpload states are compared with the parts', as S3 does: a
listed part checksum that is not the one the part was uploaded with is InvalidPart, a
full-object checksum that is not the object's is BadDigest; Complete and ListParts answer
with the checksums (`ChecksumCRC32C`, `ChecksumType`, ...). A refused Complete leaves the
upload open and writes nothing."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import boto3.exceptions
import botocore.exceptions
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.httpchecksum import CrtCrc32cChecksum

from tests.storage.conftest import bucket_of, client_for, objects_on_disk
from tests.storage.test_boto3_transfers import _file

MiB = 1024 * 1024


def _crc32c(data: bytes) -> str:
    checksum = CrtCrc32cChecksum()
    checksum.update(data)
    return base64.b64encode(checksum.digest()).decode()


def _start(client, bucket: str, key: str, **create: str) -> tuple[str, list[bytes], list[dict]]:  # type: ignore[no-untyped-def]
    """An open CRC32C upload of two parts; the parts as Complete would list them."""
    data = [os.urandom(5 * MiB), os.urandom(1000)]
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32C", **create)["UploadId"]
    listed = []
    for number, body in enumerate(data, start=1):
        sent = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body, ChecksumAlgorithm="CRC32C"
        )
        assert sent["ChecksumCRC32C"] == _crc32c(body)
        listed.append({"PartNumber": number, "ETag": sent["ETag"], "ChecksumCRC32C": sent["ChecksumCRC32C"]})
    return upload_id, data, listed


def _refused(call, **kwargs) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**kwargs)
    error = caught.value.response
    return error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"], error["Error"].get("Message", "")


def test_list_parts_and_complete_answer_with_the_checksums(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, data, listed = _start(client, bucket, "model.bin")
    parts = client.list_parts(Bucket=bucket, Key="model.bin", UploadId=upload_id)
    assert parts["ChecksumAlgorithm"] == "CRC32C" and parts["ChecksumType"] == "COMPOSITE"
    assert [part["ChecksumCRC32C"] for part in parts["Parts"]] == [_crc32c(body) for body in data]
    done = client.complete_multipart_upload(
        Bucket=bucket, Key="model.bin", UploadId=upload_id, MultipartUpload={"Parts": listed}
    )
    of_digests = CrtCrc32cChecksum()
    of_digests.update(b"".join(base64.b64decode(_crc32c(body)) for body in data))
    assert done["ChecksumCRC32C"] == base64.b64encode(of_digests.digest()).decode() + "-2"
    assert done["ChecksumType"] == "COMPOSITE"


def test_a_listed_part_checksum_that_differs_is_invalid_part_and_the_upload_stays_open(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, data, listed = _start(client, bucket, "model.bin")
    wrong = [listed[0], {**listed[1], "ChecksumCRC32C": _crc32c(b"other bytes")}]
    status, code, message = _refused(
        client.complete_multipart_upload,
        Bucket=bucket,
        Key="model.bin",
        UploadId=upload_id,
        MultipartUpload={"Parts": wrong},
    )
    assert (status, code) == (400, "InvalidPart") and "Part 2" in message and "ChecksumCRC32C" in message
    other_algorithm = [listed[0], {"PartNumber": 2, "ETag": listed[1]["ETag"], "ChecksumSHA256": "x" * 43 + "="}]
    status, code, _ = _refused(
        client.complete_multipart_upload,
        Bucket=bucket,
        Key="model.bin",
        UploadId=upload_id,
        MultipartUpload={"Parts": other_algorithm},
    )
    assert (status, code) == (400, "InvalidPart")
    assert objects_on_disk(bucket) == []
    client.complete_multipart_upload(
        Bucket=bucket, Key="model.bin", UploadId=upload_id, MultipartUpload={"Parts": listed}
    )
    assert client.get_object(Bucket=bucket, Key="model.bin")["Body"].read() == b"".join(data)


def test_an_unsupported_part_checksum_element_is_a_clear_400(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, _, listed = _start(client, bucket, "model.bin")
    md5 = [listed[0], {"PartNumber": 2, "ETag": listed[1]["ETag"], "ChecksumMD5": "AAAAAAAAAAAAAAAAAAAAAA=="}]
    status, code, message = _refused(
        client.complete_multipart_upload,
        Bucket=bucket,
        Key="model.bin",
        UploadId=upload_id,
        MultipartUpload={"Parts": md5},
    )
    assert (status, code) == (400, "InvalidRequest") and "ChecksumMD5" in message


def test_a_wrong_full_object_checksum_with_complete_is_bad_digest(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, data, listed = _start(client, bucket, "model.bin", ChecksumType="FULL_OBJECT")
    complete = {"Bucket": bucket, "Key": "model.bin", "UploadId": upload_id, "MultipartUpload": {"Parts": listed}}
    status, code, message = _refused(
        client.complete_multipart_upload, **complete, ChecksumCRC32C=_crc32c(b"not it"), ChecksumType="FULL_OBJECT"
    )
    assert (status, code) == (400, "BadDigest") and "x-amz-checksum-crc32c" in message
    assert objects_on_disk(bucket) == []
    whole = _crc32c(b"".join(data))
    done = client.complete_multipart_upload(**complete, ChecksumCRC32C=whole, ChecksumType="FULL_OBJECT")
    assert done["ChecksumCRC32C"] == whole and done["ChecksumType"] == "FULL_OBJECT"


def test_a_checksum_or_type_the_upload_was_not_created_with_is_refused(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, data, listed = _start(client, bucket, "model.bin")  # COMPOSITE
    complete = {"Bucket": bucket, "Key": "model.bin", "UploadId": upload_id, "MultipartUpload": {"Parts": listed}}
    status, code, message = _refused(
        client.complete_multipart_upload, **complete, ChecksumCRC32C=_crc32c(b"".join(data)), ChecksumType="FULL_OBJECT"
    )
    assert (status, code) == (400, "InvalidRequest") and "x-amz-checksum-type" in message
    status, code, message = _refused(client.complete_multipart_upload, **complete, ChecksumSHA256="x" * 43 + "=")
    assert (status, code) == (400, "InvalidRequest") and "x-amz-checksum-sha256" in message
    assert objects_on_disk(bucket) == []


def test_upload_file_with_a_wrong_whole_file_crc32c_fails_and_stores_nothing(
    http_server, s3, writer, tmp_path: Path
) -> None:
    """s3transfer sends a whole-file checksum given in ExtraArgs with Complete (FULL_OBJECT)."""
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    path = _file(tmp_path, 11 * MiB)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    extra = {"ChecksumAlgorithm": "CRC32C", "ChecksumCRC32C": _crc32c(b"another file")}
    with pytest.raises(boto3.exceptions.S3UploadFailedError, match="BadDigest"):
        client.upload_file(str(path), bucket, "ckpt/full.bin", ExtraArgs=extra, Config=config)
    assert objects_on_disk(bucket) == []
