"""The client matrix of issue 17 that other files do not already hold, each against a live server.

Already elsewhere: the AWS CLI's `cp` up and down multipart and `sync` both ways
(test_aws_cli.py), `mv` (test_copy_clients.py), `s3api get-object --part-number`
(test_part_number_reads.py); rclone `sync` after touching a file's mtime and `moveto`
(test_copy_clients.py); s3cmd `put`, `get`, `ls`, `sync` through SIMPLETUNER_S3_HOSTS
(test_s3_hosts.py). Here: boto3 over HTTPS with aws-chunked trailers carrying CRC32C (a
single PutObject and a multipart `upload_file`), downloads validated with ChecksumMode=ENABLED,
the AWS CLI's `sync` both ways checked byte for byte (a multipart file among them), and rclone
`copy` and `check` (which must fail when a remote file differs).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.httpchecksum import CrtCrc32cChecksum, StreamingChecksumBody

from tests.storage.conftest import bucket_of, client_for, objects_on_disk
from tests.storage.test_aws_cli import AWS, _aws
from tests.storage.test_boto3_transfers import _file, _sent_headers
from tests.storage.test_copy_clients import _rclone, _require

MiB = 1024 * 1024


def _crc32c(data: bytes) -> bytes:
    checksum = CrtCrc32cChecksum()
    checksum.update(data)
    return checksum.digest()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _trailed(headers: dict[str, str]) -> bool:
    """Whether a request sent its body aws-chunked with a CRC32C trailer."""
    return "aws-chunked" in headers.get("content-encoding", "") and headers.get("x-amz-trailer") == (
        "x-amz-checksum-crc32c"
    )


def test_boto3_https_put_object_sends_a_crc32c_trailer_and_the_download_is_validated(https_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, https_server, cred)
    sent = _sent_headers(client)
    data = os.urandom(300_000)
    put = client.put_object(Bucket=bucket, Key="ckpt/state.pt", Body=data, ChecksumAlgorithm="CRC32C")
    assert _trailed(sent[-1]), sent[-1]  # the form under test, not a plain header
    assert put["ChecksumCRC32C"] == _b64(_crc32c(data))
    got = client.get_object(Bucket=bucket, Key="ckpt/state.pt", ChecksumMode="ENABLED")
    assert isinstance(got["Body"], StreamingChecksumBody)  # botocore checks what it reads
    assert got["Body"].read() == data and got["ChecksumCRC32C"] == _b64(_crc32c(data))


def test_boto3_https_upload_file_multipart_with_crc32c_trailers(https_server, s3, writer, tmp_path: Path) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, https_server, cred)
    sent = _sent_headers(client)
    path = _file(tmp_path, 12 * MiB)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=2)
    client.upload_file(str(path), bucket, "ckpt/model.bin", ExtraArgs={"ChecksumAlgorithm": "CRC32C"}, Config=config)
    parts = [headers for headers in sent if "x-amz-trailer" in headers or "content-encoding" in headers]
    assert len(parts) == 3 and all(_trailed(headers) for headers in parts)
    data = path.read_bytes()
    chunks = [data[i : i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    composite = _b64(_crc32c(b"".join(_crc32c(chunk) for chunk in chunks))) + "-3"
    head = client.head_object(Bucket=bucket, Key="ckpt/model.bin", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == composite and head["ChecksumType"] == "COMPOSITE"
    down = tmp_path / "down.bin"
    client.download_file(bucket, "ckpt/model.bin", str(down), ExtraArgs={"ChecksumMode": "ENABLED"}, Config=config)
    assert down.read_bytes() == data


def test_boto3_https_full_object_crc32c_multipart_is_validated_on_download(
    https_server, s3, writer, tmp_path: Path
) -> None:
    """With the whole file's CRC32C given, s3transfer uploads FULL_OBJECT and sends that value
    with Complete; a whole-object GET then carries a CRC botocore validates."""
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, https_server, cred)
    path = _file(tmp_path, 11 * MiB)
    data = path.read_bytes()
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    extra = {"ChecksumAlgorithm": "CRC32C", "ChecksumCRC32C": _b64(_crc32c(data))}
    client.upload_file(str(path), bucket, "ckpt/full.bin", ExtraArgs=extra, Config=config)
    got = client.get_object(Bucket=bucket, Key="ckpt/full.bin", ChecksumMode="ENABLED")
    assert isinstance(got["Body"], StreamingChecksumBody)
    assert got["ChecksumType"] == "FULL_OBJECT" and got["ChecksumCRC32C"] == _b64(_crc32c(data))
    assert got["Body"].read() == data


@pytest.mark.slow
def test_rclone_copy_then_check_passes_and_fails_when_a_remote_file_differs(
    endpoint, s3, writer, tmp_path: Path
) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    local = tmp_path / "outputs"
    (local / "samples").mkdir(parents=True)
    files = {"log.txt": b"step 1\n", "samples/0.png": os.urandom(4000), "model.bin": os.urandom(9 * MiB)}
    for name, data in files.items():
        (local / name).write_bytes(data)
    copied = _rclone(endpoint, cred, tmp_path, "copy", str(local), f"job:{bucket}/run")
    assert copied.returncode == 0, copied.stderr
    assert objects_on_disk(bucket) == sorted(f"run/{name}" for name in files)
    client = client_for(s3, endpoint, cred)
    for name, data in files.items():
        assert client.get_object(Bucket=bucket, Key=f"run/{name}")["Body"].read() == data
    checked = _rclone(endpoint, cred, tmp_path, "check", str(local), f"job:{bucket}/run")
    assert checked.returncode == 0, checked.stderr

    # Same size, other bytes: only a hash comparison can tell.
    client.put_object(Bucket=bucket, Key="run/log.txt", Body=b"step 9\n")
    differs = _rclone(endpoint, cred, tmp_path, "check", str(local), f"job:{bucket}/run")
    assert differs.returncode != 0
    assert "log.txt" in differs.stderr and "1 differences found" in differs.stderr


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_aws_s3_sync_both_ways_delivers_the_bytes(endpoint, s3, writer, tmp_path: Path) -> None:
    _require(AWS)
    cred = writer()
    bucket = bucket_of(cred)
    job = (cred.access_key_id, cred.secret)
    local = tmp_path / "outputs"
    (local / "samples").mkdir(parents=True)
    (local / "samples" / "0.png").write_bytes(os.urandom(3000))
    (local / "train.log").write_text("step 1\n")
    _file(local, 9 * MiB, "model.safetensors")  # above the CLI's 8 MiB threshold: multipart both ways
    up = _aws(endpoint, *job, tmp_path, "s3", "sync", str(local), f"s3://{bucket}/run")
    assert up.returncode == 0, up.stderr
    client = client_for(s3, endpoint, cred)
    sent = _tree(local)
    for name, data in sent.items():
        assert client.get_object(Bucket=bucket, Key=f"run/{name}")["Body"].read() == data, name
    mirror = tmp_path / "mirror"
    down = _aws(endpoint, *job, tmp_path, "s3", "sync", f"s3://{bucket}/run", str(mirror))
    assert down.returncode == 0, down.stderr
    assert _tree(mirror) == sent
