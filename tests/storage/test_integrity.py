"""Bodies are verified before they become objects: hashes, checksums, lengths, framing, disconnects."""

from __future__ import annotations

import base64
import hashlib
import time
import zlib

import httpx
import pytest

from storage import signing
from storage.chunked import ChunkSigning
from tests.storage.conftest import bucket_of, objects_on_disk, temp_files
from tests.storage.raw import open_socket, read_response_head, request_head, signed_headers


def _crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _put(endpoint, cred, key: str, body: bytes, payload: str, headers: dict[str, str] | None = None) -> httpx.Response:  # type: ignore[no-untyped-def]
    url = f"{endpoint.url}/{bucket_of(cred)}/{key}"
    sent = {"Content-Length": str(len(body)), **(headers or {})}
    signed = signed_headers("PUT", url, cred, payload, sent)
    return httpx.put(url, content=body, headers=signed, verify=endpoint.verify)


def _error_code(response: httpx.Response) -> str:
    text = response.text
    return text.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in text else f"HTTP {response.status_code}"


def test_a_body_that_does_not_match_its_signed_sha256_is_refused(endpoint, writer) -> None:
    cred = writer()
    signed_for = hashlib.sha256(b"original").hexdigest()
    response = _put(endpoint, cred, "k", b"tampered", signed_for)
    assert response.status_code == 400
    assert _error_code(response) == "XAmzContentSHA256Mismatch"
    assert objects_on_disk(bucket_of(cred)) == [] and temp_files() == []


def test_a_wrong_crc32_header_is_bad_digest(endpoint, writer) -> None:
    cred = writer()
    response = _put(endpoint, cred, "k", b"data", signing.UNSIGNED_PAYLOAD, {"x-amz-checksum-crc32": _crc32(b"other")})
    assert _error_code(response) == "BadDigest"
    assert objects_on_disk(bucket_of(cred)) == []
    good = _put(endpoint, cred, "k", b"data", signing.UNSIGNED_PAYLOAD, {"x-amz-checksum-crc32": _crc32(b"data")})
    assert good.status_code == 200
    assert good.headers["x-amz-checksum-crc32"] == _crc32(b"data")


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_sha_checksum_headers_are_verified(http_server, writer, algorithm: str) -> None:
    cred = writer()
    digest = base64.b64encode(hashlib.new(algorithm, b"data").digest()).decode()
    assert (
        _put(
            http_server, cred, "k", b"data", signing.UNSIGNED_PAYLOAD, {f"x-amz-checksum-{algorithm}": digest}
        ).status_code
        == 200
    )
    wrong = base64.b64encode(hashlib.new(algorithm, b"x").digest()).decode()
    response = _put(http_server, cred, "k2", b"data", signing.UNSIGNED_PAYLOAD, {f"x-amz-checksum-{algorithm}": wrong})
    assert _error_code(response) == "BadDigest"


def test_content_md5_is_verified(http_server, writer) -> None:
    cred = writer()
    wrong = base64.b64encode(hashlib.md5(b"x").digest()).decode()
    response = _put(http_server, cred, "k", b"data", signing.UNSIGNED_PAYLOAD, {"Content-MD5": wrong})
    assert _error_code(response) == "BadDigest"
    response = _put(http_server, cred, "k", b"data", signing.UNSIGNED_PAYLOAD, {"Content-MD5": "not base64!"})
    assert _error_code(response) == "InvalidDigest"
    assert objects_on_disk(bucket_of(cred)) == []


def _aws_chunked(data: bytes, trailer: str, size: int = 3) -> bytes:
    chunks = b"".join(
        b"%x\r\n" % len(data[i : i + size]) + data[i : i + size] + b"\r\n" for i in range(0, len(data), size)
    )
    return chunks + b"0\r\n" + trailer.encode() + b"\r\n\r\n"


@pytest.mark.parametrize("good", [True, False])
def test_unsigned_trailer_bodies_check_their_crc32_trailer(endpoint, writer, good: bool) -> None:
    cred = writer()
    data = b"checkpoint bytes"
    body = _aws_chunked(data, f"x-amz-checksum-crc32:{_crc32(data if good else b'x')}")
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
    }
    response = _put(endpoint, cred, "k", body, signing.STREAMING_UNSIGNED_TRAILER, headers)
    if good:
        assert response.status_code == 200, response.text
        assert objects_on_disk(bucket_of(cred)) == ["k"]
    else:
        assert _error_code(response) == "BadDigest"
        assert objects_on_disk(bucket_of(cred)) == []


def test_aws_chunked_without_decoded_length_is_missing_content_length(http_server, writer) -> None:
    cred = writer()
    body = _aws_chunked(b"abc", "x-amz-checksum-crc32:" + _crc32(b"abc"))
    response = _put(
        http_server, cred, "k", body, signing.STREAMING_UNSIGNED_TRAILER, {"x-amz-trailer": "x-amz-checksum-crc32"}
    )
    assert response.status_code == 411
    assert _error_code(response) == "MissingContentLength"


def test_signed_chunk_bodies_are_verified_chunk_by_chunk(http_server, writer) -> None:
    cred = writer()
    url = f"{http_server.url}/{bucket_of(cred)}/signed.bin"
    data = b"x" * 70_000

    def build(tamper: bool) -> tuple[dict[str, str], bytes]:
        headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data))}
        pieces = [data[:65536], data[65536:], b""]
        length = sum(len(b"%x;chunk-signature=" % len(p)) + 64 + 4 + len(p) for p in pieces)
        headers["Content-Length"] = str(length)
        signed = signed_headers("PUT", url, cred, signing.STREAMING_SIGNED, headers)
        claim = signing.parse_authorization(
            signing.RequestParts("PUT", "/", [], {k.lower(): v for k, v in signed.items()})
        )
        state = ChunkSigning(signing.signing_key(cred.secret, claim.scope), claim)
        body = b""
        for piece in pieces:
            signature = signing.chunk_signature(state.key, claim, state.previous, hashlib.sha256(piece).hexdigest())
            state.previous = signature
            sent = piece.replace(b"x", b"y", 1) if tamper and piece else piece
            body += b"%x;chunk-signature=%s\r\n" % (len(piece), signature.encode()) + sent + b"\r\n"
        return signed, body

    headers, body = build(tamper=False)
    assert httpx.put(url, content=body, headers=headers).status_code == 200
    assert objects_on_disk(bucket_of(cred)) == ["signed.bin"]
    headers, body = build(tamper=True)
    response = httpx.put(url.replace("signed.bin", "tampered.bin"), content=body, headers=headers)
    assert _error_code(response) == "SignatureDoesNotMatch"
    assert objects_on_disk(bucket_of(cred)) == ["signed.bin"]


def test_a_body_without_content_length_is_refused(http_server, writer) -> None:
    cred = writer()
    url = f"{http_server.url}/{bucket_of(cred)}/k"
    headers = signed_headers("PUT", url, cred, signing.UNSIGNED_PAYLOAD)

    def body():  # type: ignore[no-untyped-def]
        yield b"streamed without a length"

    response = httpx.put(url, content=body(), headers=headers)
    assert response.status_code == 411
    assert _error_code(response) == "MissingContentLength"
    assert objects_on_disk(bucket_of(cred)) == []


def test_an_object_over_the_size_limit_is_refused_before_its_body(http_server, writer, settings) -> None:
    settings.SIMPLETUNER_S3_MAX_OBJECT_BYTES = 1000
    cred = writer()
    response = _put(http_server, cred, "big", b"x" * 1001, signing.UNSIGNED_PAYLOAD)
    assert _error_code(response) == "EntityTooLarge"
    assert "1000" in response.text
    assert _put(http_server, cred, "ok", b"x" * 1000, signing.UNSIGNED_PAYLOAD).status_code == 200
    assert objects_on_disk(bucket_of(cred)) == ["ok"]


def test_uploads_are_refused_when_free_disk_would_drop_below_the_minimum(http_server, writer, settings) -> None:
    settings.SIMPLETUNER_S3_MIN_FREE_BYTES = 1024**6  # an exabyte: more than any test machine has
    cred = writer()
    response = _put(http_server, cred, "k", b"x", signing.UNSIGNED_PAYLOAD)
    assert response.status_code == 507
    assert _error_code(response) == "InsufficientStorage"
    assert "SIMPLETUNER_S3_MIN_FREE_BYTES" in response.text
    assert objects_on_disk(bucket_of(cred)) == [] and temp_files() == []


def _wait_for(condition, timeout: float = 10) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_client_that_disconnects_mid_upload_leaves_no_object_and_no_temp_file(endpoint, writer) -> None:
    cred = writer()
    url = f"{endpoint.url}/{bucket_of(cred)}/partial.bin"
    headers = signed_headers("PUT", url, cred, signing.UNSIGNED_PAYLOAD, {"Content-Length": str(10 * 1024 * 1024)})
    sock = open_socket(url, endpoint.ca)
    sock.sendall(request_head("PUT", url, headers))
    sock.sendall(b"x" * 3 * 1024 * 1024)
    assert _wait_for(lambda: len(temp_files()) == 1)  # the upload is being written...
    sock.close()
    assert _wait_for(lambda: temp_files() == [])  # ...and discarded when the client goes away
    assert objects_on_disk(bucket_of(cred)) == []


def test_expect_100_continue_is_answered_only_after_authentication(http_server, writer) -> None:
    cred = writer()
    url = f"{http_server.url}/{bucket_of(cred)}/k"
    good = signed_headers("PUT", url, cred, signing.UNSIGNED_PAYLOAD, {"Content-Length": "5", "Expect": "100-continue"})
    bad = {**good, "Authorization": good["Authorization"][:-4] + "0000"}
    sock = open_socket(url)
    sock.sendall(request_head("PUT", url, bad))
    head = read_response_head(sock)
    assert head.startswith("HTTP/1.1 403"), head  # refused before a single body byte was sent
    sock.close()
    sock = open_socket(url)
    sock.sendall(request_head("PUT", url, good))
    assert read_response_head(sock).startswith("HTTP/1.1 100 Continue")
    sock.sendall(b"hello")
    assert read_response_head(sock).startswith("HTTP/1.1 200")
    sock.close()
    assert objects_on_disk(bucket_of(cred)) == ["k"]


def test_a_complete_whose_client_went_away_still_finishes_and_is_recorded(http_server, writer, s3) -> None:
    """The Complete's work outlives its request (storage.keepalive.start): with the client gone
    and its request's lent thread back in the pool, it still stores, counts and audits the
    object, on a thread of its own."""
    import fcntl
    from pathlib import Path

    from django.conf import settings as django_settings

    from audit.models import AuditEntry
    from providers.models import Job
    from tests.storage.conftest import client_for

    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="late.bin")["UploadId"]
    etag = client.upload_part(Bucket=bucket, Key="late.bin", UploadId=upload_id, PartNumber=1, Body=b"late")["ETag"]
    document = (
        f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    ).encode()
    url = f"{http_server.url}/{bucket}/late.bin?uploadId={upload_id}"
    payload = hashlib.sha256(document).hexdigest()
    headers = signed_headers("POST", url, cred, payload, {"Content-Length": str(len(document))})
    # Hold the upload's lock, so the Complete waits for it after its request has ended.
    lock = (Path(django_settings.OUTPUTS_DIR) / ".s3-uploads" / upload_id / "upload.json").open()
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        sock = open_socket(url)
        sock.sendall(request_head("POST", url, headers) + document)
        assert read_response_head(sock).startswith("HTTP/1.1 200")  # answered at once, kept alive
        sock.close()
        time.sleep(0.5)  # the server notices the disconnect; the request's context ends
        # Other requests meanwhile take the lent thread the Complete's request had.
        assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    assert _wait_for(lambda: objects_on_disk(bucket) == ["late.bin"])
    assert _wait_for(lambda: AuditEntry.objects.filter(event_type="storage.upload").count() == 1)
    assert Job.objects.get(id=cred.job_id).upload_objects == 1
