"""Every checksum S3 clients send (CRC32, CRC32C, CRC64NVME, SHA1, SHA256) is verified, stored
and returned on GetObject/HeadObject with ChecksumMode=ENABLED; multipart objects get the
composite or full-object checksum built from their parts."""

from __future__ import annotations

import base64
import hashlib
import os

import botocore.exceptions
import httpx
import pytest
from botocore.httpchecksum import CrtCrc32cChecksum, CrtCrc64NvmeChecksum

from storage import signing
from tests.storage.conftest import bucket_of, client_for, objects_on_disk
from tests.storage.raw import signed_headers

MiB = 1024 * 1024
CHECK_INPUT = b"123456789"
# The published check values of each algorithm over "123456789" (independent of any library).
CHECK_VALUES = {
    "crc32": (0xCBF43926).to_bytes(4, "big"),
    "crc32c": (0xE3069283).to_bytes(4, "big"),
    "crc64nvme": (0xAE8B14860A799888).to_bytes(8, "big"),
    "sha1": hashlib.sha1(CHECK_INPUT).digest(),
    "sha256": hashlib.sha256(CHECK_INPUT).digest(),
}
BOTO_NAMES = {"crc32": "CRC32", "crc32c": "CRC32C", "crc64nvme": "CRC64NVME", "sha1": "SHA1", "sha256": "SHA256"}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("algorithm", sorted(CHECK_VALUES))
def test_each_checksum_is_verified_stored_and_returned(endpoint, s3, writer, algorithm: str) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    name = BOTO_NAMES[algorithm]
    put = client.put_object(Bucket=bucket, Key="k", Body=CHECK_INPUT, ChecksumAlgorithm=name)
    assert put[f"Checksum{name}"] == _b64(CHECK_VALUES[algorithm])
    # botocore checks the body it reads against the checksum returned.
    got = client.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got["Body"].read() == CHECK_INPUT
    assert got[f"Checksum{name}"] == _b64(CHECK_VALUES[algorithm])
    assert got["ChecksumType"] == "FULL_OBJECT"
    head = client.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head[f"Checksum{name}"] == _b64(CHECK_VALUES[algorithm])


def _aws_chunked(data: bytes, trailer: str) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n0\r\n" + trailer.encode() + b"\r\n\r\n"


@pytest.mark.parametrize("algorithm", ["crc32c", "crc64nvme"])
@pytest.mark.parametrize("form", ["header", "trailer"])
def test_a_wrong_crc32c_or_crc64nvme_is_bad_digest_and_stores_nothing(http_server, writer, algorithm, form) -> None:
    cred = writer()
    url = f"{http_server.url}/{bucket_of(cred)}/k"
    wrong = _b64(bytes(len(CHECK_VALUES[algorithm])))
    if form == "header":
        body, payload = CHECK_INPUT, signing.UNSIGNED_PAYLOAD
        headers = {f"x-amz-checksum-{algorithm}": wrong, "Content-Length": str(len(body))}
    else:
        body, payload = (
            _aws_chunked(CHECK_INPUT, f"x-amz-checksum-{algorithm}:{wrong}"),
            signing.STREAMING_UNSIGNED_TRAILER,
        )
        headers = {
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(CHECK_INPUT)),
            "x-amz-trailer": f"x-amz-checksum-{algorithm}",
            "Content-Length": str(len(body)),
        }
    response = httpx.put(url, content=body, headers=signed_headers("PUT", url, cred, payload, headers))
    assert response.status_code == 400
    assert "<Code>BadDigest</Code>" in response.text and algorithm.upper() in response.text
    assert objects_on_disk(bucket_of(cred)) == []


def test_a_malformed_crc64nvme_header_is_invalid_digest(http_server, writer) -> None:
    cred = writer()
    url = f"{http_server.url}/{bucket_of(cred)}/k"
    headers = {"x-amz-checksum-crc64nvme": _b64(b"four"), "Content-Length": "9"}
    response = httpx.put(
        url, content=CHECK_INPUT, headers=signed_headers("PUT", url, cred, signing.UNSIGNED_PAYLOAD, headers)
    )
    assert response.status_code == 400 and "<Code>InvalidDigest</Code>" in response.text
    assert "x-amz-checksum-crc64nvme" in response.text


def _multipart(client, bucket: str, key: str, algorithm: str, **create: str) -> tuple[list[bytes], list[dict]]:  # type: ignore[no-untyped-def]
    parts = [os.urandom(5 * MiB), os.urandom(1000)]
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm=algorithm, **create)[
        "UploadId"
    ]
    listed = []
    for number, data in enumerate(parts, start=1):
        sent = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, ChecksumAlgorithm=algorithm
        )
        listed.append(
            {"PartNumber": number, "ETag": sent["ETag"], f"Checksum{algorithm}": sent[f"Checksum{algorithm}"]}
        )
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed})
    return parts, listed


def test_a_multipart_crc32c_upload_gets_the_composite_checksum_of_its_parts(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    parts, listed = _multipart(client, bucket, "model.bin", "CRC32C")
    of_digests = CrtCrc32cChecksum()
    of_digests.update(b"".join(base64.b64decode(part["ChecksumCRC32C"]) for part in listed))
    got = client.get_object(Bucket=bucket, Key="model.bin", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"".join(parts)
    assert got["ChecksumCRC32C"] == _b64(of_digests.digest()) + "-2"
    assert got["ChecksumType"] == "COMPOSITE"


def test_a_multipart_crc64nvme_upload_gets_the_crc_of_the_whole_object(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    parts, _ = _multipart(client, bucket, "model.bin", "CRC64NVME", ChecksumType="FULL_OBJECT")
    whole = CrtCrc64NvmeChecksum()
    whole.update(b"".join(parts))
    # botocore validates the full-object CRC of what it reads.
    got = client.get_object(Bucket=bucket, Key="model.bin", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"".join(parts)
    assert got["ChecksumCRC64NVME"] == _b64(whole.digest())
    assert got["ChecksumType"] == "FULL_OBJECT"


def test_parts_of_an_upload_must_carry_its_declared_checksum(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="CRC32C")["UploadId"]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.upload_part(
            Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=b"x", ChecksumAlgorithm="SHA256"
        )
    assert caught.value.response["Error"]["Code"] == "InvalidRequest"
    assert "x-amz-checksum-crc32c" in caught.value.response["Error"]["Message"]


def test_crc64nvme_composite_is_refused_at_create(http_server, s3, writer) -> None:
    cred = writer()
    client = client_for(s3, http_server, cred)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.create_multipart_upload(
            Bucket=bucket_of(cred), Key="k", ChecksumAlgorithm="CRC64NVME", ChecksumType="COMPOSITE"
        )
    assert caught.value.response["Error"]["Code"] == "InvalidRequest"


def test_no_checksum_is_returned_for_a_range_or_an_object_uploaded_without_one(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    plain = client_for(s3, http_server, cred, request_checksum_calculation="when_required")
    plain.put_object(Bucket=bucket, Key="plain", Body=b"data")
    got = plain.get_object(Bucket=bucket, Key="plain", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"data"
    assert not any(name.startswith("Checksum") for name in got)
    client = client_for(s3, http_server, cred)
    client.put_object(Bucket=bucket, Key="k", Body=CHECK_INPUT, ChecksumAlgorithm="CRC32C")
    ranged = client.get_object(Bucket=bucket, Key="k", Range="bytes=0-3", ChecksumMode="ENABLED")
    assert ranged["Body"].read() == b"1234"
    assert "ChecksumCRC32C" not in ranged
