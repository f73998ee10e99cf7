"""Reading S3 request headers: body expectations, ranges, preconditions, metadata."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime

from django.utils.http import parse_http_date_safe

from storage import errors, signing
from storage.auth import Authenticated
from storage.body import BodySpec
from storage.checksums import ALGORITHMS, decode_b64_digest
from storage.chunked import AwsChunkedDecoder, ChunkSigning
from storage.store import DEFAULT_CONTENT_TYPE, ObjectInfo

_SIGNED_CHUNKS = (signing.STREAMING_SIGNED, signing.STREAMING_SIGNED_TRAILER)


def _length(value: str | None, header: str) -> int:
    if value is None or value.strip() == "":
        raise errors.MissingContentLength(f"You must provide the {header} HTTP header.")
    try:
        length = int(value)
    except ValueError:
        raise errors.InvalidArgument(f"{header} must be a number of bytes.") from None
    if length < 0:
        raise errors.InvalidArgument(f"{header} must not be negative.")
    return length


def body_spec(headers: Mapping[str, str], auth: Authenticated) -> BodySpec:
    """What the incoming body must be: its length, signed hash, checksum, and framing."""
    payload = auth.payload
    if auth.claim is None and signing.is_sha256(headers.get("x-amz-content-sha256", "")):
        payload = headers["x-amz-content-sha256"]  # unsigned forms may still declare a hash: check it
    chunked = payload in signing.STREAMING_MODES or "aws-chunked" in headers.get("content-encoding", "")
    spec = BodySpec(length=0)
    if chunked:
        spec.length = _length(headers.get("x-amz-decoded-content-length"), "x-amz-decoded-content-length")
        chunk_signing = None
        if payload in _SIGNED_CHUNKS:
            if auth.claim is None or auth.key is None:
                raise errors.InvalidRequest("Signed chunks need an AWS4-HMAC-SHA256 signature.")
            chunk_signing = ChunkSigning(auth.key, auth.claim)
        spec.decoder = AwsChunkedDecoder(chunk_signing, trailer_signed=payload == signing.STREAMING_SIGNED_TRAILER)
    else:
        if headers.get("transfer-encoding", "").lower() == "chunked" and "content-length" not in headers:
            raise errors.MissingContentLength()
        spec.length = _length(headers.get("content-length"), "Content-Length")
        spec.sha256 = payload if signing.is_sha256(payload) else None
    _checksum(headers, spec)
    if "content-md5" in headers:
        spec.content_md5 = _content_md5(headers["content-md5"])
    return spec


def _checksum(headers: Mapping[str, str], spec: BodySpec) -> None:
    for algorithm in ALGORITHMS:
        header = f"x-amz-checksum-{algorithm}"
        if header in headers:
            spec.checksum_algorithm = algorithm
            spec.checksum_expected = decode_b64_digest(headers[header], algorithm, header)
            return
    trailer = headers.get("x-amz-trailer", "").strip().lower()
    if trailer:
        algorithm = trailer.removeprefix("x-amz-checksum-")
        if algorithm == trailer or algorithm not in ALGORITHMS or spec.decoder is None:
            raise errors.InvalidRequest(f"Unsupported x-amz-trailer {trailer!r}.")
        spec.checksum_algorithm = algorithm


def _content_md5(value: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise errors.InvalidDigest("The Content-MD5 you specified is not valid.")
    return raw


def user_metadata(headers: Mapping[str, str]) -> dict[str, str]:
    metadata = {name[len("x-amz-meta-") :]: value for name, value in headers.items() if name.startswith("x-amz-meta-")}
    if sum(len(k) + len(v) for k, v in metadata.items()) > 2048:
        raise errors.MetadataTooLarge()
    return metadata


def content_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").strip()[:255] or DEFAULT_CONTENT_TYPE


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte of a single `bytes=` range; None means the whole object.

    Like S3: unparseable or multi-range headers are ignored; a range starting past the end
    is 416.
    """
    if not header or not header.strip().lower().startswith("bytes="):
        return None
    spec = header.strip()[6:].strip()
    first_text, sep, last_text = spec.partition("-")
    if not sep or "," in spec:
        return None
    try:
        if first_text == "":
            suffix = int(last_text)
            if suffix <= 0 or size == 0:
                raise errors.InvalidRange(headers={"Content-Range": f"bytes */{size}"}, ActualObjectSize=str(size))
            return max(size - suffix, 0), size - 1
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if last < first:
        return None
    if first >= size:
        raise errors.InvalidRange(headers={"Content-Range": f"bytes */{size}"}, ActualObjectSize=str(size))
    return first, min(last, size - 1)


def _etag_matches(header: str, etag: str) -> bool:
    wanted = {item.strip().removeprefix("W/").strip('"') for item in header.split(",")}
    return "*" in wanted or etag.strip('"') in wanted


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    seconds = parse_http_date_safe(value)
    return None if seconds is None else datetime.fromtimestamp(seconds).astimezone()


def not_modified(headers: Mapping[str, str], info: ObjectInfo) -> bool:
    """Evaluate If-Match / If-Unmodified-Since (412) and If-None-Match / If-Modified-Since (304)."""
    if "if-match" in headers:
        if not _etag_matches(headers["if-match"], info.etag):
            raise errors.PreconditionFailed(Condition="If-Match")
    elif (since := _date(headers.get("if-unmodified-since"))) and info.last_modified > since:
        raise errors.PreconditionFailed(Condition="If-Unmodified-Since")
    if "if-none-match" in headers:
        return _etag_matches(headers["if-none-match"], info.etag)
    since = _date(headers.get("if-modified-since"))
    return since is not None and info.last_modified <= since
