"""The XML documents of listings and multipart answers: ListAllMyBuckets, ListBucketResult (v1
and v2), ListParts, CompleteMultipartUploadResult."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote_plus

from storage import checksums, listing, multipart, services, store, xml
from storage.credentials import Credential


def buckets(credential: Credential, found: list[tuple[str, float]]) -> bytes:
    entries: list[xml.Child] = [
        ("Bucket", [("Name", name), ("CreationDate", datetime.fromtimestamp(created, UTC))]) for name, created in found
    ]
    owner = [("ID", credential.access_key_id), ("DisplayName", credential.username or credential.job_id)]
    return xml.document("ListAllMyBucketsResult", [("Owner", owner), ("Buckets", entries)])


def bucket_listing(
    bucket: str, query: dict[str, str], result: services.Listing, *, v2: bool, encode: bool, limit: int
) -> bytes:
    def enc(value: str | None) -> str | None:
        # botocore url-decodes these with unquote_plus: "+" must travel as %2B, space as "+".
        return quote_plus(value, safe="/") if encode and value is not None else value

    page = result.page
    head: list[xml.Child] = [("Name", bucket)]
    if v2:
        head += [("Prefix", enc(query.get("prefix", ""))), ("Delimiter", enc(query.get("delimiter") or None))]
        head += [
            ("MaxKeys", limit),
            ("EncodingType", "url" if encode else None),
            ("KeyCount", len(page.contents) + len(page.prefixes)),
        ]
        head += [("IsTruncated", page.truncated), ("ContinuationToken", query.get("continuation-token"))]
        head += [("NextContinuationToken", listing.encode_token(page.last) if page.truncated and page.last else None)]
        head += [("StartAfter", enc(query.get("start-after")))]
    else:
        # botocore decodes Marker, NextMarker and Delimiter of v1 listings, but not Prefix.
        head += [("Prefix", query.get("prefix", "")), ("Marker", enc(query.get("marker", "")))]
        head += [("NextMarker", enc(page.last) if page.truncated else None), ("MaxKeys", limit)]
        head += [("Delimiter", enc(query.get("delimiter") or None)), ("EncodingType", "url" if encode else None)]
        head += [("IsTruncated", page.truncated)]
    contents: list[xml.Child] = [
        (
            "Contents",
            [
                ("Key", enc(info.key)),
                ("LastModified", info.last_modified),
                ("ETag", info.etag),
                ("Size", info.size),
                ("Owner", _owner(result.owner)),
                ("StorageClass", "STANDARD"),
            ],
        )
        for info in result.objects
    ]
    prefixes: list[xml.Child] = [("CommonPrefixes", [("Prefix", enc(prefix))]) for prefix in page.prefixes]
    return xml.document("ListBucketResult", head + contents + prefixes)


def _owner(owner: tuple[str, str] | None) -> list[xml.Child] | None:
    return None if owner is None else [("ID", owner[0]), ("DisplayName", owner[1])]


def _number(value: str | None, default: int) -> int:
    return int(value) if value and value.isdigit() else default


def list_parts(
    bucket: str, key: str, upload: multipart.Upload, parts: list[multipart.Part], query: dict[str, str]
) -> bytes:
    marker = _number(query.get("part-number-marker"), 0)
    limit = min(_number(query.get("max-parts"), 1000), 1000)
    after = [part for part in parts if part.number > marker]
    shown, truncated = after[:limit], len(after) > limit
    children: list[xml.Child] = [("Bucket", bucket), ("Key", key), ("UploadId", upload.upload_id)]
    children += [("PartNumberMarker", marker), ("NextPartNumberMarker", shown[-1].number if shown else marker)]
    children += [("MaxParts", limit), ("IsTruncated", truncated), ("StorageClass", "STANDARD")]
    if upload.checksum_algorithm:
        kind = upload.checksum_type or checksums.checksum_type(None, upload.checksum_algorithm)
        children += [("ChecksumAlgorithm", upload.checksum_algorithm.upper()), ("ChecksumType", kind)]
    children += [("Part", _part(part)) for part in shown]
    return xml.document("ListPartsResult", children)


def _part(part: multipart.Part) -> list[xml.Child]:
    """A ListParts Part, with the checksum its UploadPart carried (`Checksum<ALG>`), as S3."""
    children: list[xml.Child] = [("PartNumber", part.number), ("LastModified", part.last_modified)]
    children += [("ETag", part.etag), ("Size", part.size)]
    if part.checksum is not None:
        children.append((f"Checksum{part.checksum[0].upper()}", checksums.encode(part.checksum[1])))
    return children


def complete_result(location: str, bucket: str, key: str, info: store.ObjectInfo) -> bytes:
    """CompleteMultipartUploadResult, with the object's checksum and its type when it has one
    (`ChecksumCRC32C`, `ChecksumType`, ... as S3 answers)."""
    children: list[xml.Child] = [("Location", location), ("Bucket", bucket), ("Key", key), ("ETag", info.etag)]
    children += [(f"Checksum{name.upper()}", value) for name, value in sorted(info.checksums.items())]
    if info.checksums:
        children.append(("ChecksumType", info.checksum_type))
    return xml.document("CompleteMultipartUploadResult", children)
