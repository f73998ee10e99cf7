"""Reading S3 request headers: body expectations, ranges and parts, preconditions, metadata."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime

from django.utils.http import parse_http_date_safe

from storage import checksums, errors, multipart, signing
from storage.auth import Authenticated
from storage.body import BodySpec
from storage.checksums import ALGORITHMS, decode_b64_digest
from storage.chunked import AwsChunkedDecoder, ChunkSigning
from storage.preconditions import etag_matches
from storage.store import DEFAULT_CONTENT_TYPE, ObjectInfo

_SIGNED_CHUNKS = (signing.STREAMING_SIGNED, signing.STREAMING_SIGNED_TRAILER)
MP_OBJECT_SIZE = "x-amz-mp-object-size"
MAX_LONG = 2**63 - 1


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


def select_part(value: str, headers: Mapping[str, str], info: ObjectInfo) -> tuple[int, int] | None:
    """GetObject/HeadObject `?partNumber=N`: the (first, last) byte of part N (None for an
    empty object).

    As S3: part 1 of a single-request object is the whole object; a part past the last is
    416 InvalidPartNumber; with a Range header too, 400.
    """
    number = multipart.part_number(value)
    if "range" in headers:
        raise errors.InvalidRequest("Cannot specify both Range header and partNumber query parameter.")
    if not info.multipart:
        if number != 1:
            raise errors.InvalidPartNumber(PartNumberRequested=str(number), ActualPartCount="1")
        return (0, info.size - 1) if info.size else None
    if not info.parts:
        raise errors.NotImplementedError_(
            "This object's part boundaries were not recorded (completed before they were kept, or too many "
            "parts of differing sizes): read it with a Range instead."
        )
    count = sum(runs for _, runs in info.parts)
    if number > count:
        raise errors.InvalidPartNumber(PartNumberRequested=str(number), ActualPartCount=str(count))
    first, remaining = 0, number - 1
    for size, runs in info.parts:
        skipped = min(remaining, runs)
        first, remaining = first + skipped * size, remaining - skipped
        if remaining == 0 and skipped < runs:
            return (first, first + size - 1) if size else None
    raise AssertionError("a part number within the count has a run")


def stored_checksums(headers: Mapping[str, str], info: ObjectInfo) -> dict[str, str]:
    """`x-amz-checksum-<algorithm>` and `x-amz-checksum-type` of the object when the client asks
    (`x-amz-checksum-mode: ENABLED`); the caller sends them only with the whole object."""
    if headers.get("x-amz-checksum-mode", "").strip().upper() != "ENABLED" or not info.checksums:
        return {}
    found = {f"x-amz-checksum-{name}": value for name, value in info.checksums.items() if name in ALGORITHMS}
    if found and info.checksum_type:
        found["x-amz-checksum-type"] = info.checksum_type
    return found


def upload_checksum(headers: Mapping[str, str]) -> tuple[str, str]:
    """CreateMultipartUpload's (algorithm, checksum type), or ("", "") when it names none."""
    value = headers.get("x-amz-checksum-algorithm", "").strip()
    if not value:
        if headers.get("x-amz-checksum-type", "").strip():
            raise errors.InvalidRequest("x-amz-checksum-type needs x-amz-checksum-algorithm.")
        return "", ""
    algorithm = checksums.algorithm_name(value, "x-amz-checksum-algorithm")
    return algorithm, checksums.checksum_type(headers.get("x-amz-checksum-type"), algorithm)


def mp_object_size(headers: Mapping[str, str]) -> int | None:
    """CompleteMultipartUpload's x-amz-mp-object-size (the object size the client expects), or
    None without one. Only ASCII digits, within S3's Long, are a size: int() alone would also
    take "+5", "1_000" and non-ASCII digits."""
    value = headers.get(MP_OBJECT_SIZE)
    if value is None:
        return None
    value = value.strip()
    digits = value.lstrip("0") or "0"
    if not (value.isascii() and value.isdigit()) or len(digits) > 19 or int(digits) > MAX_LONG:
        raise errors.InvalidArgument(
            f"{MP_OBJECT_SIZE} must be a non-negative decimal integer (a number of bytes); got {value[:64]!r}.",
            ArgumentName=MP_OBJECT_SIZE,
            ArgumentValue=value[:64],
        )
    return int(digits)  # not `value`: past 4,300 digits, leading zeros or not, int() raises


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    seconds = parse_http_date_safe(value)
    return None if seconds is None else datetime.fromtimestamp(seconds).astimezone()


def not_modified(headers: Mapping[str, str], info: ObjectInfo) -> bool:
    """Evaluate If-Match / If-Unmodified-Since (412) and If-None-Match / If-Modified-Since (304)."""
    if "if-match" in headers:
        if not etag_matches(headers["if-match"], info.etag):
            raise errors.PreconditionFailed(Condition="If-Match")
    elif (since := _date(headers.get("if-unmodified-since"))) and info.last_modified > since:
        raise errors.PreconditionFailed(Condition="If-Unmodified-Since")
    if "if-none-match" in headers:
        return etag_matches(headers["if-none-match"], info.etag)
    since = _date(headers.get("if-modified-since"))
    return since is not None and info.last_modified <= since
