"""The views of server-side copy: PUT with `x-amz-copy-source` is CopyObject, and with
`?uploadId=&partNumber=` too it is UploadPartCopy. Each reads its headers, calls one service
in storage.copying and renders CopyObjectResult / CopyPartResult.

`x-amz-copy-source` is `[/]bucket/key[?versionId=...]`, percent-encoded (boto3 and the AWS
CLI encode it; a raw key works too). This endpoint keeps no versions: `versionId=null` (what
S3 calls the current object of an unversioned bucket) is accepted, any other refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

from django.http import HttpResponseBase
from django.utils.http import parse_http_date_safe

from storage import checksums, clock, errors, multipart, xml
from storage.copying import CopiedPart, CopyConditions, CopySource, NewAttributes, object_copy, part_copy
from storage.keepalive import answer
from storage.preconditions import write_precondition
from storage.requests import content_type, user_metadata
from storage.store import ObjectInfo

if TYPE_CHECKING:
    from storage.views import S3Context

SOURCE_HEADER = "x-amz-copy-source"
RANGE_HEADER = "x-amz-copy-source-range"
_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d+)$")
_NAMES = {"crc32": "ChecksumCRC32", "crc32c": "ChecksumCRC32C", "crc64nvme": "ChecksumCRC64NVME"}
_NAMES |= {"sha1": "ChecksumSHA1", "sha256": "ChecksumSHA256"}


def _invalid_source(message: str) -> errors.S3Error:
    return errors.InvalidArgument(message, ArgumentName=SOURCE_HEADER)


def copy_source(value: str) -> CopySource:
    """The bucket and key an `x-amz-copy-source` header names (strict percent-decoding)."""
    path, _, query = value.strip().partition("?")
    try:
        decoded = unquote_to_bytes(path.encode("latin-1", "replace")).decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid_source("x-amz-copy-source is not valid UTF-8 once percent-decoded.") from None
    bucket, _, key = decoded.removeprefix("/").partition("/")
    if not bucket or not key:
        raise _invalid_source("Copy Source must mention the source bucket and key: sourcebucket/sourcekey.")
    for item in filter(None, query.split("&")):
        name, _, version = item.partition("=")
        if name != "versionId":
            raise _invalid_source(f"x-amz-copy-source accepts only ?versionId=, not {name[:40]!r}.")
        if version != "null":
            raise _invalid_source(
                "This endpoint keeps no object versions: only the current object (versionId=null, or no "
                "versionId) can be copied."
            )
    return CopySource(bucket, key)


def _date(headers: Mapping[str, str], name: str) -> datetime | None:
    value = headers.get(name)
    seconds = parse_http_date_safe(value) if value else None
    return None if seconds is None else datetime.fromtimestamp(seconds).astimezone()


def copy_conditions(headers: Mapping[str, str]) -> CopyConditions:
    return CopyConditions(
        if_match=headers.get("x-amz-copy-source-if-match"),
        if_none_match=headers.get("x-amz-copy-source-if-none-match"),
        if_modified_since=_date(headers, "x-amz-copy-source-if-modified-since"),
        if_unmodified_since=_date(headers, "x-amz-copy-source-if-unmodified-since"),
    )


def new_attributes(headers: Mapping[str, str]) -> NewAttributes:
    """`x-amz-metadata-directive` (COPY, the default, or REPLACE) and `x-amz-checksum-algorithm`."""
    directive = headers.get("x-amz-metadata-directive", "COPY").strip().upper()
    if directive not in ("COPY", "REPLACE"):
        raise errors.InvalidArgument(
            "Unknown metadata directive: x-amz-metadata-directive must be COPY or REPLACE.",
            ArgumentName="x-amz-metadata-directive",
        )
    replace = (content_type(headers), user_metadata(headers)) if directive == "REPLACE" else None
    wanted = headers.get("x-amz-checksum-algorithm", "").strip()
    algorithm = checksums.algorithm_name(wanted, "x-amz-checksum-algorithm") if wanted else ""
    return NewAttributes(replace, algorithm)


def copy_range(headers: Mapping[str, str]) -> tuple[int, int] | None:
    """`x-amz-copy-source-range: bytes=first-last` (both given, first <= last), or None."""
    value = headers.get(RANGE_HEADER)
    if value is None:
        return None
    found = _RANGE_RE.match(value.strip())
    if found is None or int(found[1]) > int(found[2]):
        raise errors.InvalidArgument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are "
            "the zero-based offsets of the first and last bytes to copy",
            ArgumentName=RANGE_HEADER,
            ArgumentValue=value[:100],
        )
    return int(found[1]), int(found[2])


def _checksum_children(found: Mapping[str, str]) -> list[xml.Child]:
    return [(_NAMES[name], value) for name, value in found.items() if name in _NAMES]


async def copy_request(ctx: S3Context, bucket: str, key: str) -> HttpResponseBase:
    """A PUT carrying `x-amz-copy-source`: CopyObject, or UploadPartCopy with an uploadId."""
    source = copy_source(ctx.headers[SOURCE_HEADER])
    conditions = copy_conditions(ctx.headers)
    if "uploadId" in ctx.query:
        number = multipart.part_number(ctx.query.get("partNumber"))
        work = part_copy(
            credential=ctx.credential,
            bucket=bucket,
            key=key,
            upload_id=ctx.query["uploadId"],
            number=number,
            source=source,
            conditions=conditions,
            byte_range=copy_range(ctx.headers),
        )
        return await answer(ctx.request, work, _part_result)
    if RANGE_HEADER in ctx.headers:
        raise errors.InvalidArgument(
            "x-amz-copy-source-range applies to UploadPartCopy only (CopyObject copies the whole object).",
            ArgumentName=RANGE_HEADER,
        )
    copied = object_copy(
        credential=ctx.credential,
        bucket=bucket,
        key=key,
        source=source,
        conditions=conditions,
        new=new_attributes(ctx.headers),
        precondition=write_precondition(ctx.headers, key),
        client_ip=ctx.client_ip,
    )
    return await answer(ctx.request, copied, _object_result)


def _object_result(info: ObjectInfo) -> bytes:
    children: list[xml.Child] = [("ETag", info.etag), ("LastModified", info.last_modified)]
    return xml.document("CopyObjectResult", children + _checksum_children(info.checksums))


def _part_result(part: CopiedPart) -> bytes:
    children: list[xml.Child] = [("ETag", part.etag), ("LastModified", clock.now())]
    if part.checksum is not None:
        children += _checksum_children({part.checksum[0]: checksums.encode(part.checksum[1])})
    return xml.document("CopyPartResult", children)
