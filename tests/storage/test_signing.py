"""Signature verification against AWS's published examples (independent of our own clients)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage import errors, signing
from storage.chunked import AwsChunkedDecoder, ChunkSigning

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _parts(
    method: str, path: str, headers: dict[str, str], query: list[tuple[str, str]] | None = None
) -> signing.RequestParts:
    return signing.RequestParts(method=method, raw_path=path, query=query or [], headers=headers)


def _get_example(signature: str) -> signing.RequestParts:
    return _parts(
        "GET",
        "/test.txt",
        {
            "host": "examplebucket.s3.amazonaws.com",
            "range": "bytes=0-9",
            "x-amz-content-sha256": EMPTY,
            "x-amz-date": "20130524T000000Z",
            "authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            f"SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature={signature}",
        },
    )


def test_it_verifies_the_aws_get_object_example() -> None:
    parts = _get_example("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    claim = signing.parse_authorization(parts)
    assert claim.scope.access_key_id == "AKIAIOSFODNN7EXAMPLE"
    signing.verify_v4(parts, claim, SECRET)


def test_it_rejects_the_get_example_with_one_signature_digit_changed() -> None:
    parts = _get_example("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb42")
    with pytest.raises(errors.SignatureDoesNotMatch):
        signing.verify_v4(parts, signing.parse_authorization(parts), SECRET)


def test_it_rejects_a_changed_signed_header() -> None:
    parts = _get_example("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    parts.headers["range"] = "bytes=0-99"  # type: ignore[index]
    with pytest.raises(errors.SignatureDoesNotMatch):
        signing.verify_v4(parts, signing.parse_authorization(parts), SECRET)


def test_it_verifies_the_aws_put_object_example_with_an_encoded_path() -> None:
    parts = _parts(
        "PUT",
        "/test%24file.text",
        {
            "host": "examplebucket.s3.amazonaws.com",
            "date": "Fri, 24 May 2013 00:00:00 GMT",
            "x-amz-date": "20130524T000000Z",
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
            "x-amz-content-sha256": "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
            "authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
            "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        },
    )
    signing.verify_v4(parts, signing.parse_authorization(parts), SECRET)


def test_it_verifies_the_aws_presigned_url_example() -> None:
    query = [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"),
        ("X-Amz-Date", "20130524T000000Z"),
        ("X-Amz-Expires", "86400"),
        ("X-Amz-SignedHeaders", "host"),
        ("X-Amz-Signature", "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"),
    ]
    parts = _parts("GET", "/test.txt", {"host": "examplebucket.s3.amazonaws.com"}, query)
    claim = signing.parse_presigned(parts)
    signing.verify_v4(parts, claim, SECRET)
    signing.check_time(claim, datetime(2013, 5, 24, 12, tzinfo=UTC), timedelta(minutes=15))
    with pytest.raises(errors.AccessDenied, match="expired"):
        signing.check_time(claim, datetime(2013, 5, 25, 0, 0, 1, tzinfo=UTC), timedelta(minutes=15))


def _chunked_example() -> tuple[signing.RequestParts, bytes]:
    seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    parts = _parts(
        "PUT",
        "/examplebucket/chunkObject.txt",
        {
            "host": "s3.amazonaws.com",
            "x-amz-date": "20130524T000000Z",
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": "66560",
            "content-length": "66824",
            "authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
            f"x-amz-decoded-content-length;x-amz-storage-class,Signature={seed}",
        },
    )
    body = (
        b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
        + b"a" * 65536
        + b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n"
        + b"a" * 1024
        + b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n"
    )
    assert len(body) == 66824
    return parts, body


@pytest.mark.parametrize("piece", [1, 7, 64, 1000, 65536, 100_000])
def test_it_decodes_the_aws_signed_chunks_example_however_the_body_is_split(piece: int) -> None:
    parts, body = _chunked_example()
    claim = signing.parse_authorization(parts)
    key = signing.verify_v4(parts, claim, SECRET)
    decoder = AwsChunkedDecoder(ChunkSigning(key, claim))
    payload = b"".join(b"".join(decoder.feed(body[i : i + piece])) for i in range(0, len(body), piece))
    decoder.finish()
    assert payload == b"a" * 66560


def test_it_rejects_a_tampered_signed_chunk() -> None:
    parts, body = _chunked_example()
    claim = signing.parse_authorization(parts)
    key = signing.verify_v4(parts, claim, SECRET)
    tampered = body.replace(b"a" * 10, b"a" * 9 + b"b", 1)
    with pytest.raises(errors.SignatureDoesNotMatch):
        AwsChunkedDecoder(ChunkSigning(key, claim)).feed(tampered)


def test_it_rejects_a_body_that_stops_before_the_final_chunk() -> None:
    decoder = AwsChunkedDecoder()
    assert decoder.feed(b"5\r\nhello\r\n") == [b"hello"]
    with pytest.raises(errors.IncompleteBody):
        decoder.finish()


def test_it_reads_unsigned_trailers() -> None:
    decoder = AwsChunkedDecoder()
    out = decoder.feed(b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:NSRBwg==\r\n\r\n")
    decoder.finish()
    assert out == [b"abc"]
    assert decoder.trailers == {"x-amz-checksum-crc32": "NSRBwg=="}


@pytest.mark.parametrize(
    "body",
    [b"zz\r\nabc\r\n", b"3\r\nabcdef\r\n0\r\n\r\n", b"3\r\nabc\r\n0\r\nno-colon\r\n\r\n", b"1" * 5000],
)
def test_it_rejects_malformed_framing(body: bytes) -> None:
    with pytest.raises(errors.S3Error):
        AwsChunkedDecoder().feed(body)


def test_sigv2_presigned_urls_are_checked_over_the_path_botocore_signs() -> None:
    import base64
    import hashlib
    import hmac

    text = "GET\n\n\n1700000000\n/job-1/a%20b.txt"
    signature = base64.b64encode(hmac.new(b"s3cr3t", text.encode(), hashlib.sha1).digest()).decode()
    parts = signing.RequestParts(
        method="GET",
        raw_path="/api/cloud/storage/job-1/a%20b.txt",
        query=[("AWSAccessKeyId", "AK"), ("Expires", "1700000000"), ("Signature", signature)],
        headers={"host": "localhost"},
        mount="/api/cloud/storage",
    )
    claim = signing.parse_presigned_v2(parts)
    signing.verify_v2(parts, claim, "s3cr3t", datetime(2023, 11, 1, tzinfo=UTC))
    with pytest.raises(errors.SignatureDoesNotMatch):
        signing.verify_v2(parts, claim, "other", datetime(2023, 11, 1, tzinfo=UTC))
    with pytest.raises(errors.AccessDenied):
        signing.verify_v2(parts, claim, "s3cr3t", datetime(2024, 1, 1, tzinfo=UTC))


# --- Presigning (the download links of GET /api/cloud/jobs/{id}/outputs) -----------------------


def test_it_presigns_the_aws_presigned_url_example() -> None:
    """AWS's "Authenticating Requests: Using Query Parameters" example, to the signature."""
    query = signing.presign_v4(
        method="GET",
        host="examplebucket.s3.amazonaws.com",
        raw_path="/test.txt",
        access_key_id="AKIAIOSFODNN7EXAMPLE",
        secret=SECRET,
        now=datetime(2013, 5, 24, tzinfo=UTC),
        expires=86400,
    )
    pairs = dict(pair.split("=", 1) for pair in query.split("&"))
    assert pairs["X-Amz-Signature"] == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    assert pairs["X-Amz-Credential"] == "AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"


def test_what_it_presigns_botocore_presigns_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    at = datetime(2026, 12, 6, 18, 30, 5)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: at)
    url = "http://127.0.0.1:8080/api/cloud/storage/job-abc/samples/step%20100/%C3%BC%2B1.png"
    request = AWSRequest(method="GET", url=url)
    S3SigV4QueryAuth(Credentials("dl_1_job-abc", "s3cr3t"), "s3", "us-east-1", expires=900).add_auth(request)
    theirs = dict(pair.split("=", 1) for pair in request.url.split("?", 1)[1].split("&"))
    ours = signing.presign_v4(
        method="GET",
        host="127.0.0.1:8080",
        raw_path=url.split("8080", 1)[1],
        access_key_id="dl_1_job-abc",
        secret="s3cr3t",
        now=at.replace(tzinfo=UTC),
        expires=900,
    )
    assert dict(pair.split("=", 1) for pair in ours.split("&")) == theirs


def test_what_it_presigns_verifies_until_it_expires() -> None:
    now = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)
    query = signing.presign_v4(
        method="GET", host="h:1", raw_path="/b/k", access_key_id="dl_1_b", secret="s", now=now, expires=60
    )
    pairs = [tuple(pair.split("=", 1)) for pair in query.split("&")]
    decoded = [(k, v.replace("%2F", "/")) for k, v in pairs]
    parts = _parts("GET", "/b/k", {"host": "h:1"}, decoded)
    claim = signing.parse_presigned(parts)
    signing.verify_v4(parts, claim, "s")
    signing.check_time(claim, now + timedelta(seconds=60), timedelta(minutes=15))
    with pytest.raises(errors.AccessDenied, match="expired"):
        signing.check_time(claim, now + timedelta(seconds=61), timedelta(minutes=15))
    with pytest.raises(errors.SignatureDoesNotMatch):
        signing.verify_v4(_parts("PUT", "/b/k", {"host": "h:1"}, decoded), claim, "s")
    with pytest.raises(ValueError):
        signing.presign_v4(method="GET", host="h", raw_path="/", access_key_id="a", secret="s", now=now, expires=0)
