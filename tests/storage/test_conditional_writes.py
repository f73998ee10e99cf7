"""Conditional writes (If-None-Match: *, If-Match) on PutObject and CompleteMultipartUpload,
including writers racing for one key: exactly one create-only writer wins."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import botocore.exceptions
import pytest
from django.conf import settings as django_settings

from storage import signing
from tests.storage.conftest import bucket_of, client_for, temp_files
from tests.storage.raw import open_socket, read_response_head, request_head, signed_headers

MiB = 1024 * 1024


def _stored(bucket: str, key: str) -> bytes:
    return (Path(django_settings.OUTPUTS_DIR) / bucket / key).read_bytes()


def _code(call: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value.response["ResponseMetadata"]["HTTPStatusCode"], caught.value.response["Error"]["Code"]


def _wait_for(condition: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_a_create_only_put_of_an_existing_key_is_412_and_keeps_the_object(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    client.put_object(Bucket=bucket, Key="locks/run.lock", Body=b"first", IfNoneMatch="*")
    assert _code(lambda: client.put_object(Bucket=bucket, Key="locks/run.lock", Body=b"second", IfNoneMatch="*")) == (
        412,
        "PreconditionFailed",
    )
    assert _stored(bucket, "locks/run.lock") == b"first"
    assert temp_files() == []


def test_if_match_replaces_only_the_version_it_names(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    etag = client.put_object(Bucket=bucket, Key="state.json", Body=b"v1")["ETag"]
    assert _code(lambda: client.put_object(Bucket=bucket, Key="state.json", Body=b"v2", IfMatch='"0" ')) == (
        412,
        "PreconditionFailed",
    )
    assert _stored(bucket, "state.json") == b"v1"
    client.put_object(Bucket=bucket, Key="state.json", Body=b"v2", IfMatch=etag)
    assert _stored(bucket, "state.json") == b"v2"
    # The ETag named is no longer the current one.
    assert _code(lambda: client.put_object(Bucket=bucket, Key="state.json", Body=b"v3", IfMatch=etag))[0] == 412
    assert _stored(bucket, "state.json") == b"v2"


def test_if_match_on_a_missing_key_is_no_such_key(http_server, s3, writer) -> None:
    cred = writer()
    client = client_for(s3, http_server, cred)
    assert _code(lambda: client.put_object(Bucket=bucket_of(cred), Key="absent", Body=b"x", IfMatch='"abc"')) == (
        404,
        "NoSuchKey",
    )
    assert not (Path(django_settings.OUTPUTS_DIR) / bucket_of(cred) / "absent").exists()


def test_if_none_match_with_an_etag_on_a_write_is_refused_not_ignored(http_server, s3, writer) -> None:
    cred = writer()
    client = client_for(s3, http_server, cred)
    status, code = _code(lambda: client.put_object(Bucket=bucket_of(cred), Key="k", Body=b"x", IfNoneMatch='"abc"'))
    assert (status, code) == (501, "NotImplemented")


def _start_put(endpoint, cred, key: str, size: int, extra: dict[str, str]):  # type: ignore[no-untyped-def]
    """A PUT whose first half is sent: it passed the early precondition check and is writing."""
    url = f"{endpoint.url}/{bucket_of(cred)}/{key}"
    headers = signed_headers("PUT", url, cred, signing.UNSIGNED_PAYLOAD, {"Content-Length": str(size), **extra})
    sock = open_socket(url, endpoint.ca)
    sock.sendall(request_head("PUT", url, headers))
    sock.sendall(b"a" * (size // 2))
    assert _wait_for(lambda: len(temp_files()) == 1)
    return sock


def test_a_create_only_put_loses_at_commit_to_a_writer_that_finished_first(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    sock = _start_put(endpoint, cred, "ckpt.bin", 2 * MiB, {"If-None-Match": "*"})
    client_for(s3, endpoint, cred).put_object(Bucket=bucket, Key="ckpt.bin", Body=b"winner", IfNoneMatch="*")
    sock.sendall(b"a" * MiB)
    head = read_response_head(sock)
    sock.close()
    assert head.startswith("HTTP/1.1 412"), head
    assert _stored(bucket, "ckpt.bin") == b"winner"
    assert _wait_for(lambda: temp_files() == [])


def test_an_if_match_put_loses_at_commit_when_the_object_changed_meanwhile(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    etag = client.put_object(Bucket=bucket, Key="state.json", Body=b"v1")["ETag"]
    sock = _start_put(http_server, cred, "state.json", 2 * MiB, {"If-Match": etag})
    client.put_object(Bucket=bucket, Key="state.json", Body=b"changed")
    sock.sendall(b"a" * MiB)
    head = read_response_head(sock)
    sock.close()
    assert head.startswith("HTTP/1.1 412"), head
    assert _stored(bucket, "state.json") == b"changed"


def test_concurrent_create_only_writers_of_one_key_exactly_one_wins(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    writers = 4
    clients = [client_for(s3, endpoint, cred) for _ in range(writers)]
    for round_ in range(5):
        key = f"race/{round_}.lock"
        start = threading.Barrier(writers)
        outcomes: dict[int, int] = {}

        def put(index: int, key: str = key, start: threading.Barrier = start, outcomes: dict[int, int] = outcomes):
            body = bytes([index]) * MiB
            start.wait()
            try:
                clients[index].put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
                outcomes[index] = 200
            except botocore.exceptions.ClientError as error:
                outcomes[index] = error.response["ResponseMetadata"]["HTTPStatusCode"]

        threads = [threading.Thread(target=put, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(outcomes.values()) == [200, 412, 412, 412], outcomes
        winner = next(index for index, status in outcomes.items() if status == 200)
        assert _stored(bucket, key) == bytes([winner]) * MiB


def _multipart(client, bucket: str, key: str, body: bytes) -> tuple[str, list[dict[str, object]]]:  # type: ignore[no-untyped-def]
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etag = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=body)["ETag"]
    return upload_id, [{"PartNumber": 1, "ETag": etag}]


def test_complete_with_if_none_match_on_an_existing_key_is_412_and_the_upload_stays_open(endpoint, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    client.put_object(Bucket=bucket, Key="model.bin", Body=b"existing")
    upload_id, parts = _multipart(client, bucket, "model.bin", b"new")

    def complete(**condition: str) -> object:
        return client.complete_multipart_upload(
            Bucket=bucket, Key="model.bin", UploadId=upload_id, MultipartUpload={"Parts": parts}, **condition
        )

    assert _code(lambda: complete(IfNoneMatch="*")) == (412, "PreconditionFailed")
    assert _code(lambda: complete(IfMatch='"0"')) == (412, "PreconditionFailed")
    assert _stored(bucket, "model.bin") == b"existing"
    etag = client.head_object(Bucket=bucket, Key="model.bin")["ETag"]
    complete(IfMatch=etag)  # the upload was left open by the refusals
    assert _stored(bucket, "model.bin") == b"new"


def test_complete_with_if_match_on_a_missing_key_is_no_such_key(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, parts = _multipart(client, bucket, "absent.bin", b"x")
    status, code = _code(
        lambda: client.complete_multipart_upload(
            Bucket=bucket, Key="absent.bin", UploadId=upload_id, MultipartUpload={"Parts": parts}, IfMatch='"0"'
        )
    )
    assert (status, code) == (404, "NoSuchKey")
    client.abort_multipart_upload(Bucket=bucket, Key="absent.bin", UploadId=upload_id)


def test_concurrent_create_only_completes_of_one_key_exactly_one_wins(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    clients = [client_for(s3, http_server, cred) for _ in range(3)]
    uploads = [_multipart(client, bucket, "final.bin", bytes([i]) * 1000) for i, client in enumerate(clients)]
    start = threading.Barrier(len(clients))
    codes: dict[int, str] = {}

    def complete(index: int) -> None:
        upload_id, parts = uploads[index]
        start.wait()
        try:
            clients[index].complete_multipart_upload(
                Bucket=bucket, Key="final.bin", UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
            )
            codes[index] = "OK"
        except botocore.exceptions.ClientError as error:
            # Refused before answering (412), or after the 200 had started (an Error document).
            codes[index] = error.response["Error"]["Code"]

    threads = [threading.Thread(target=complete, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(codes.values()) == ["OK", "PreconditionFailed", "PreconditionFailed"], codes
    winner = next(index for index, code in codes.items() if code == "OK")
    assert _stored(bucket, "final.bin") == bytes([winner]) * 1000
