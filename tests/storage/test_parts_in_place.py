"""Multipart parts kept in place (storage.multipart's docstring): parts written at their slot in
the upload's slots file, which Complete renames into the object without copying; every other
arrangement (a part bigger than the slot, a part sent twice, a small part first, parts left
out) is copied as before, and gives the same object.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import zlib
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from django.conf import settings as django_settings

from providers.models import Job
from storage import completion, multipart
from tests.storage.conftest import bucket_of, client_for, temp_files

MiB = 1024 * 1024
A, B, C, D = b"a" * (5 * MiB), b"b" * (5 * MiB), b"c" * 1024, b"d" * (5 * MiB)


def _uploads() -> Path:
    return Path(django_settings.OUTPUTS_DIR) / ".s3-uploads"


def _upload_dirs() -> list[Path]:
    return [p for p in _uploads().iterdir() if p.is_dir()]


def _etag(*bodies: bytes) -> str:
    md5s = b"".join(hashlib.md5(body).digest() for body in bodies)
    return f'"{hashlib.md5(md5s).hexdigest()}-{len(bodies)}"'


@pytest.fixture
def no_copy(monkeypatch) -> None:
    """A Complete that would copy a part fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a part was copied")

    monkeypatch.setattr(completion, "_append", refuse)


@pytest.fixture
def client(http_server, s3, writer) -> Any:
    cred = writer()
    made = client_for(s3, http_server, cred)
    made.bucket = bucket_of(cred)
    return made


def _upload(client: Any, key: str, parts: list[tuple[int, bytes]], **create: Any) -> tuple[str, list[dict]]:
    upload_id = client.create_multipart_upload(Bucket=client.bucket, Key=key, **create)["UploadId"]
    sent = {}
    for number, body in parts:
        answer = client.upload_part(Bucket=client.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
        sent[number] = {"PartNumber": number, "ETag": answer["ETag"]}
    return upload_id, [sent[number] for number in sorted(sent)]


def _complete(client: Any, key: str, upload_id: str, parts: list[dict], **extra: Any) -> dict[str, Any]:
    return client.complete_multipart_upload(
        Bucket=client.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, **extra
    )


def _read(client: Any, key: str) -> bytes:
    return client.get_object(Bucket=client.bucket, Key=key)["Body"].read()


def test_parts_in_line_become_the_object_without_a_copy(client, no_copy) -> None:
    upload_id, parts = _upload(client, "ckpt.bin", [(1, A), (2, B), (3, C)])
    listed = client.list_parts(Bucket=client.bucket, Key="ckpt.bin", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, 5 * MiB), (2, 5 * MiB), (3, 1024)]
    assert _complete(client, "ckpt.bin", upload_id, parts)["ETag"] == _etag(A, B, C)
    assert _read(client, "ckpt.bin") == A + B + C
    head = client.head_object(Bucket=client.bucket, Key="ckpt.bin", PartNumber=2)
    assert (head["ContentLength"], head["PartsCount"]) == (5 * MiB, 3)
    assert Job.objects.get(id=client.bucket).upload_objects == 1
    assert _upload_dirs() == [] and (_uploads() / f"{upload_id}.done").exists() and temp_files() == []
    # A retried Complete answers the same object.
    assert _complete(client, "ckpt.bin", upload_id, parts)["ETag"] == _etag(A, B, C)


def test_parts_in_place_parts_out_of_order_and_with_a_checksum(client, no_copy) -> None:
    upload_id, parts = _upload(client, "k", [(2, B), (1, A), (3, C)], ChecksumAlgorithm="CRC32")
    answer = _complete(client, "k", upload_id, parts)
    assert answer["ETag"] == _etag(A, B, C)
    whole = client.get_object(Bucket=client.bucket, Key="k", ChecksumMode="ENABLED")
    assert whole["Body"].read() == A + B + C
    assert whole["ChecksumCRC32"] == answer["ChecksumCRC32"] and answer["ChecksumCRC32"].endswith("-3")


@pytest.mark.parametrize(
    "arrangement",
    [
        pytest.param([(1, A), (2, B), (2, D), (3, C)], id="a part sent again goes to its own file"),
        pytest.param([(3, C), (1, A), (2, B)], id="a small part first sets no slot size"),
        pytest.param([(1, A), (2, A + C), (3, C)], id="a part bigger than its slot"),
    ],
)
def test_parts_out_of_line_are_copied_into_the_same_object(client, arrangement) -> None:
    upload_id, parts = _upload(client, "k", arrangement)
    bodies = dict(arrangement)  # the last body sent for each number
    expected = b"".join(bodies[number] for number in sorted(bodies))
    assert _complete(client, "k", upload_id, parts)["ETag"] == _etag(*(bodies[n] for n in sorted(bodies)))
    assert _read(client, "k") == expected
    assert temp_files() == [] and _upload_dirs() == []


def test_parts_left_out_are_not_in_the_object(client) -> None:
    upload_id, parts = _upload(client, "k", [(1, A), (2, B), (3, C)])
    assert _complete(client, "k", upload_id, parts[:2])["ETag"] == _etag(A, B)
    assert _read(client, "k") == A + B


def test_an_in_place_complete_refused_by_its_precondition_leaves_the_upload_as_it_was(client, no_copy) -> None:
    client.put_object(Bucket=client.bucket, Key="k", Body=b"there first")
    upload_id, parts = _upload(client, "k", [(1, A), (2, C)])
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        _complete(client, "k", upload_id, parts, IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert _read(client, "k") == b"there first"
    client.delete_object(Bucket=client.bucket, Key="k")
    assert _complete(client, "k", upload_id, parts, IfNoneMatch="*")["ETag"] == _etag(A, C)
    assert _read(client, "k") == A + C


def _put_part_with_crc32(client: Any, upload_id: str, number: int, body: bytes, crc_of: bytes) -> dict:
    crc = base64.b64encode(zlib.crc32(crc_of).to_bytes(4, "big")).decode()
    return client.upload_part(
        Bucket=client.bucket, Key="k", UploadId=upload_id, PartNumber=number, Body=body, ChecksumCRC32=crc
    )


def test_a_part_refused_on_its_checksum_gives_its_slot_back(client, no_copy) -> None:
    upload_id = client.create_multipart_upload(Bucket=client.bucket, Key="k")["UploadId"]
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        _put_part_with_crc32(client, upload_id, 1, A, b"something else")
    assert refused.value.response["Error"]["Code"] == "BadDigest"
    first = _put_part_with_crc32(client, upload_id, 1, A, A)
    second = _put_part_with_crc32(client, upload_id, 2, C, C)
    parts = [{"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 2, "ETag": second["ETag"]}]
    assert _complete(client, "k", upload_id, parts)["ETag"] == _etag(A, C)
    assert _read(client, "k") == A + C


def test_a_crash_after_the_rename_and_before_the_done_marker_is_answered_by_the_retry(client) -> None:
    upload_id, parts = _upload(client, "k", [(1, A), (2, C)])
    folder = _uploads() / upload_id
    saved = _uploads() / "saved"
    shutil.copytree(folder, saved, symlinks=True)  # copy2: the parts' records keep their xattrs
    assert _complete(client, "k", upload_id, parts)["ETag"] == _etag(A, C)
    # What a Complete killed between renaming the slots file into place and writing `.done` leaves.
    (_uploads() / f"{upload_id}.done").unlink()
    (saved / multipart.SLOTS_FILE).unlink()
    os.rename(saved, folder)
    assert _complete(client, "k", upload_id, parts)["ETag"] == _etag(A, C)
    assert _read(client, "k") == A + C
    assert _upload_dirs() == []
    # Had the object changed since, the upload's bytes would be gone: NoSuchUpload, not a 500.
    upload_id, parts = _upload(client, "k2", [(1, A), (2, C)])
    folder = _uploads() / upload_id
    (folder / multipart.SLOTS_FILE).unlink()
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        _complete(client, "k2", upload_id, parts)
    assert gone.value.response["Error"]["Code"] == "NoSuchUpload"
