"""boto3's managed transfers and listings: multipart upload, ranged download, paginators, presigning."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import botocore.exceptions
import httpx
import pytest
from boto3.s3.transfer import TransferConfig

from audit.models import AuditEntry
from providers.credentials import job_upload_bearer
from tests.storage.conftest import bucket_of, client_for, objects_on_disk, temp_files

MiB = 1024 * 1024


def _file(tmp_path: Path, size: int, name: str = "big.bin") -> Path:
    path = tmp_path / name
    with path.open("wb") as f:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, MiB))
            f.write(block)
            remaining -= len(block)
    return path


def _sent_headers(client) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    """The headers of every request the client sends, lower-case names, text values."""
    seen: list[dict[str, str]] = []

    def record(request, **kwargs) -> None:  # type: ignore[no-untyped-def]
        seen.append({k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})

    client.meta.events.register("before-send.s3", record)
    return seen


def test_upload_file_of_20_mib_goes_multipart_and_lands_whole(endpoint, s3, writer, tmp_path, settings) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    sent = _sent_headers(client)
    source = _file(tmp_path, 21 * MiB)
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4)
    client.upload_file(str(source), bucket, "checkpoints/final.safetensors", Config=config)
    stored = Path(settings.OUTPUTS_DIR) / bucket / "checkpoints" / "final.safetensors"
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    head = client.head_object(Bucket=bucket, Key="checkpoints/final.safetensors")
    assert head["ETag"].endswith('-5"')
    modes = {h.get("x-amz-content-sha256", "") for h in sent}
    if endpoint.https:
        assert "STREAMING-UNSIGNED-PAYLOAD-TRAILER" in modes  # the aws-chunked path with a CRC32 trailer
    else:
        assert any(len(m) == 64 for m in modes)  # signed SHA-256 payloads
    # One audit entry per object, never per part.
    assert AuditEntry.objects.filter(event_type="storage.upload").count() == 1
    assert not (Path(settings.OUTPUTS_DIR) / ".s3-uploads").exists() or not any(
        p.is_dir() for p in (Path(settings.OUTPUTS_DIR) / ".s3-uploads").iterdir()
    )
    assert temp_files() == []


def test_download_file_uses_head_and_ranged_gets(endpoint, s3, writer, tmp_path) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    source = _file(tmp_path, 12 * MiB)
    client.upload_file(str(source), bucket, "model.bin")
    sent = _sent_headers(client)
    target = tmp_path / "down.bin"
    client.download_file(
        bucket,
        "model.bin",
        str(target),
        Config=TransferConfig(multipart_threshold=4 * MiB, multipart_chunksize=4 * MiB),
    )
    assert target.read_bytes() == source.read_bytes()
    ranges = [h["range"] for h in sent if "range" in h]
    assert any(h.get("if-match") for h in sent if "range" in h) or ranges
    assert len(ranges) >= 3 and all(r.startswith("bytes=") for r in ranges)


def test_parts_arriving_out_of_order_assemble_in_part_order(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    upload = client.create_multipart_upload(Bucket=bucket, Key="out-of-order.bin")
    blocks = {1: b"a" * 5 * MiB, 2: b"b" * 5 * MiB, 3: b"c" * 1000}
    etags = {}
    for number in (3, 1, 2):
        etags[number] = client.upload_part(
            Bucket=bucket, Key="out-of-order.bin", UploadId=upload["UploadId"], PartNumber=number, Body=blocks[number]
        )["ETag"]
    listed = client.list_parts(Bucket=bucket, Key="out-of-order.bin", UploadId=upload["UploadId"])
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
    assert [p["Size"] for p in listed["Parts"]] == [5 * MiB, 5 * MiB, 1000]
    done = client.complete_multipart_upload(
        Bucket=bucket,
        Key="out-of-order.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in (1, 2, 3)]},
    )
    md5s = b"".join(hashlib.md5(blocks[n]).digest() for n in (1, 2, 3))
    assert done["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-3"'
    assert client.get_object(Bucket=bucket, Key="out-of-order.bin")["Body"].read() == blocks[1] + blocks[2] + blocks[3]


def _upload_two_parts(client, bucket: str, key: str, first: bytes, second: bytes) -> tuple[str, list[dict]]:  # type: ignore[no-untyped-def]
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for number, body in ((1, first), (2, second)):
        etag = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    return upload_id, parts


def _complete_error(client, bucket: str, key: str, upload_id: str, parts: list[dict]) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    return caught.value.response["Error"]["Code"]


def test_complete_refuses_small_parts_wrong_etags_and_bad_order(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, parts = _upload_two_parts(client, bucket, "k", b"x" * 1000, b"y" * 10)
    assert _complete_error(client, bucket, "k", upload_id, parts) == "EntityTooSmall"
    assert _complete_error(client, bucket, "k", upload_id, [parts[1], parts[0]]) == "InvalidPartOrder"
    assert _complete_error(client, bucket, "k", upload_id, [{"PartNumber": 1, "ETag": '"00"'}]) == "InvalidPart"
    assert (
        _complete_error(client, bucket, "k", upload_id, [{"PartNumber": 7, "ETag": parts[0]["ETag"]}]) == "InvalidPart"
    )
    # After the refusals the upload is intact: the last part alone completes.
    done = client.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": parts[:1]}
    )
    assert done["ETag"].endswith('-1"')
    assert objects_on_disk(bucket) == ["k"]


def test_abort_removes_the_parts_and_the_upload(http_server, s3, writer, settings) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, parts = _upload_two_parts(client, bucket, "k", b"x" * 10, b"y" * 10)
    assert (
        client.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id)["ResponseMetadata"]["HTTPStatusCode"]
        == 204
    )
    assert not (Path(settings.OUTPUTS_DIR) / ".s3-uploads" / upload_id).exists()
    assert _complete_error(client, bucket, "k", upload_id, parts) == "NoSuchUpload"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=3, Body=b"z")
    assert caught.value.response["Error"]["Code"] == "NoSuchUpload"
    assert objects_on_disk(bucket) == []


def test_an_upload_id_belongs_to_its_key(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="a")["UploadId"]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.upload_part(Bucket=bucket, Key="b", UploadId=upload_id, PartNumber=1, Body=b"z")
    assert caught.value.response["Error"]["Code"] == "NoSuchUpload"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.upload_part(Bucket=bucket, Key="a", UploadId="../../etc", PartNumber=1, Body=b"z")
    assert caught.value.response["Error"]["Code"] == "NoSuchUpload"


def test_list_objects_v2_paginator_with_delimiter_walks_every_page(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    keys = ["a.txt", "b c+d.txt", "dir/1", "dir/2", "dir/sub/3", "é/ü.txt", "z/x", "zz"]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=b"1")
    paginator = client.get_paginator("list_objects_v2")
    pages = list(paginator.paginate(Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 2}))
    assert len(pages) == 3  # six entries: three keys and three common prefixes
    found = [o["Key"] for p in pages for o in p.get("Contents", [])]
    prefixes = [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]
    assert found == ["a.txt", "b c+d.txt", "zz"]
    assert prefixes == ["dir/", "z/", "é/"]
    flat = [
        o["Key"] for p in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 3}) for o in p["Contents"]
    ]
    assert flat == sorted(keys, key=lambda k: k.encode())
    inside = client.list_objects_v2(Bucket=bucket, Prefix="dir/", Delimiter="/")
    assert [o["Key"] for o in inside["Contents"]] == ["dir/1", "dir/2"]
    assert inside["CommonPrefixes"] == [{"Prefix": "dir/sub/"}]
    assert inside["Prefix"] == "dir/"
    assert inside["KeyCount"] == 3
    after = client.list_objects_v2(Bucket=bucket, StartAfter="dir/2")
    assert [o["Key"] for o in after["Contents"]] == ["dir/sub/3", "z/x", "zz", "é/ü.txt"]
    assert after["StartAfter"] == "dir/2"
    etag = client.head_object(Bucket=bucket, Key="a.txt")["ETag"]
    first = client.list_objects_v2(Bucket=bucket, MaxKeys=1)
    assert first["Contents"][0]["ETag"] == etag and first["Contents"][0]["Size"] == 1
    assert first["IsTruncated"] is True


def test_list_objects_v1_paginator_uses_markers(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    for key in ["x/1", "x/2", "y+1", "y 2", "z"]:
        client.put_object(Bucket=bucket, Key=key, Body=b"1")
    pages = list(
        client.get_paginator("list_objects").paginate(Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 2})
    )
    found = [o["Key"] for p in pages for o in p.get("Contents", [])]
    prefixes = [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]
    assert found == ["y 2", "y+1", "z"]
    assert prefixes == ["x/"]
    assert client.list_objects(Bucket=bucket, Prefix="y")["Prefix"] == "y"
    assert [o["Key"] for o in client.list_objects(Bucket=bucket, Marker="y 2")["Contents"]] == ["y+1", "z"]


def test_listing_a_bucket_without_encoding_type_returns_raw_keys(http_server, writer) -> None:
    cred = writer()
    response = httpx.get(
        f"{http_server.url}/{bucket_of(cred)}", headers={"X-Upload-Token": job_upload_bearer(cred.access_key_id)}
    )
    assert response.status_code == 200
    assert "<KeyCount>" not in response.text and "<IsTruncated>false</IsTruncated>" in response.text


def test_presigned_get_urls_work_with_the_default_and_s3v4_signers(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    client.put_object(Bucket=bucket, Key="share/me.txt", Body=b"hello")
    default_url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "share/me.txt"})
    v4 = client_for(s3, endpoint, cred, signature_version="s3v4")
    v4_url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "share/me.txt"}, ExpiresIn=60)
    assert "X-Amz-Signature=" in v4_url
    for url in (default_url, v4_url):
        response = httpx.get(url, verify=endpoint.verify)
        assert response.status_code == 200, response.text
        assert response.content == b"hello"
        tampered = httpx.get(url.replace("share/me.txt", "share/other.txt"), verify=endpoint.verify)
        assert tampered.status_code == 403
        assert "<Code>SignatureDoesNotMatch</Code>" in tampered.text


def test_list_buckets_shows_a_writer_only_its_own_bucket(endpoint, s3, writer) -> None:
    mine, other = writer(), writer()
    client_for(s3, endpoint, other).put_object(Bucket=bucket_of(other), Key="k", Body=b"1")
    listed = client_for(s3, endpoint, mine).list_buckets()
    assert [b["Name"] for b in listed["Buckets"]] == [bucket_of(mine)]
