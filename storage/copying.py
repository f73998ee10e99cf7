"""Server-side copy: CopyObject and UploadPartCopy, as storage services.

A copy writes only into a bucket the credential may write and reads only from one it may read
(a job: its own bucket, both ways), with the same checks as PutObject and GetObject. The
source is opened once and its descriptor kept: the bytes copied are those of the version the
`x-amz-copy-source-if-*` conditions were checked against, even if the key is replaced
meanwhile. The destination is written like an upload: a temporary file on the destination's
filesystem, renamed into place by `store.commit`, so a conditional write (`If-None-Match: *`,
`If-Match`) on the destination holds atomically here too.

What the copy is, as AWS makes it: CopyObject gives a single-part object, so its ETag is the
MD5 of its bytes. A source uploaded in one request already has that ETag, and the copy is a
reflink or a kernel copy that Python never reads; a multipart source (ETag `...-N`, part
sizes recorded) or a file written by other means is read once more to hash it, and the copy
has no parts. Checksums: a FULL_OBJECT checksum is copied as it is; a COMPOSITE one (which
depends on part boundaries the copy no longer has) is computed again over the bytes, as a
FULL_OBJECT checksum of the same algorithm; `x-amz-checksum-algorithm` on the request asks
for that algorithm instead. UploadPartCopy hashes the range it copies: a part's ETag is
its MD5, and an upload created with a checksum algorithm gets that part checksum too.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings

from storage import checksums, clock, errors, multipart, services, store
from storage.clone import copy_range, digest_range, reflink
from storage.credentials import Credential
from storage.preconditions import WritePrecondition, etag_matches

# AWS's limit for one CopyObject; larger objects are copied with UploadPartCopy.
MAX_COPY_OBJECT_BYTES = 5 * 1024**3


@dataclass(frozen=True)
class CopySource:
    bucket: str
    key: str


@dataclass(frozen=True)
class CopyConditions:
    """`x-amz-copy-source-if-*`, as S3 evaluates them: If-Match decides alone when given
    (If-Unmodified-Since is then ignored), and so does If-None-Match over If-Modified-Since;
    any that fails is 412."""

    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: datetime | None = None
    if_unmodified_since: datetime | None = None

    def check(self, info: store.ObjectInfo) -> None:
        if self.if_match is not None:
            if not etag_matches(self.if_match, info.etag):
                raise errors.PreconditionFailed(Condition="x-amz-copy-source-If-Match")
        elif self.if_unmodified_since is not None and info.last_modified > self.if_unmodified_since:
            raise errors.PreconditionFailed(Condition="x-amz-copy-source-If-Unmodified-Since")
        if self.if_none_match is not None:
            if etag_matches(self.if_none_match, info.etag):
                raise errors.PreconditionFailed(Condition="x-amz-copy-source-If-None-Match")
        elif self.if_modified_since is not None and info.last_modified <= self.if_modified_since:
            raise errors.PreconditionFailed(Condition="x-amz-copy-source-If-Modified-Since")


@dataclass(frozen=True)
class NewAttributes:
    """What the copy's own request says about the new object: the metadata it replaces
    (`x-amz-metadata-directive: REPLACE`; None keeps the source's) and a checksum algorithm."""

    replace: tuple[str, dict[str, str]] | None = None  # (content type, x-amz-meta-*)
    checksum_algorithm: str = ""


@dataclass(frozen=True)
class _Opened:
    root: Path
    fd: int
    info: store.ObjectInfo


def _open_source(
    credential: Credential, source: CopySource, conditions: CopyConditions
) -> tuple[int, store.ObjectInfo]:
    """The source's descriptor and info, checked (read access, existence, conditions)."""
    fd, info = services.object_open(credential=credential, bucket=source.bucket, key=source.key)
    try:
        conditions.check(info)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def _prepare_copy(
    credential: Credential,
    bucket: str,
    key: str,
    source: CopySource,
    conditions: CopyConditions,
    new: NewAttributes,
    precondition: WritePrecondition | None,
) -> _Opened:
    """Everything CopyObject refuses before copying (with a plain 4xx)."""
    credential.check_write(bucket, clock.now())
    store.key_segments(key)
    if (source.bucket, source.key) == (bucket, key) and new.replace is None and not new.checksum_algorithm:
        raise errors.InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself without changing the "
            "object's metadata, storage class, website redirect location or encryption attributes."
        )
    root = services.write_root(credential, bucket)
    fd, info = _open_source(credential, source, conditions)
    try:
        if info.size > MAX_COPY_OBJECT_BYTES:
            raise errors.InvalidRequest(
                "The specified copy source is larger than the maximum allowable size for a copy source: "
                f"{MAX_COPY_OBJECT_BYTES} (copy it in parts with UploadPartCopy)."
            )
        if precondition is not None:
            precondition.check(store.current(root, bucket, key))
        store.check_free_space(root, info.size, settings.SIMPLETUNER_S3_MIN_FREE_BYTES)
    except BaseException:
        os.close(fd)
        raise
    return _Opened(root, fd, info)


def _checksum_plan(info: store.ObjectInfo, requested: str) -> tuple[dict[str, str], list[str]]:
    """(checksums kept as they are, algorithms to compute over the bytes)."""
    whole = info.checksum_type == checksums.FULL_OBJECT
    if requested:
        if whole and requested in info.checksums:
            return {requested: info.checksums[requested]}, []
        return {}, [requested]
    if whole:
        return dict(info.checksums), []
    return {}, [name for name in info.checksums if name in checksums.ALGORITHMS]


def _write_copy(
    opened: _Opened, bucket: str, key: str, new: NewAttributes, check: WritePrecondition | None
) -> store.ObjectInfo:
    """Copy the source into a temporary file, describe it and rename it into place."""
    info = opened.info
    kept, compute = _checksum_plan(info, new.checksum_algorithm)
    content_type, metadata = new.replace or (info.content_type, info.metadata)
    fd, tmp_path = store.temp_file(opened.root)
    with store.discarded_on_error(tmp_path):
        try:
            if not reflink(opened.fd, fd):
                copy_range(opened.fd, fd, 0, info.size)
            attrs = _copied_attrs(opened, kept, compute, content_type, metadata)
            store.set_attrs(fd, attrs)
            if settings.SIMPLETUNER_S3_FSYNC:
                os.fsync(fd)
        finally:
            os.close(fd)
        return store.commit(opened.root, bucket, key, tmp_path, check.check if check is not None else None)


def _copied_attrs(
    opened: _Opened, kept: dict[str, str], compute: list[str], content_type: str, metadata: dict[str, str]
) -> store.ObjectAttrs:
    """The copy's ETag and checksums: the source's where they can be kept, the rest computed
    from the source's bytes."""
    info = opened.info
    digests = {name: checksums.new_checksum(name) for name in compute}
    md5 = None if info.etag_is_md5 else hashlib.md5()
    if md5 is not None or digests:
        digest_range(opened.fd, 0, info.size, [*digests.values(), *([md5] if md5 else [])])
    kept.update({name: checksums.encode(digest.digest()) for name, digest in digests.items()})
    etag = info.etag if md5 is None else f'"{md5.hexdigest()}"'
    kind = checksums.FULL_OBJECT if kept else ""
    return store.ObjectAttrs(etag, content_type, metadata, checksums=kept, checksum_type=kind)


async def object_copy(
    *,
    credential: Credential,
    bucket: str,
    key: str,
    source: CopySource,
    conditions: CopyConditions,
    new: NewAttributes,
    precondition: WritePrecondition | None,
    client_ip: str,
) -> store.ObjectInfo:
    """CopyObject: `source` as `bucket/key`, recorded like an upload (audit, job progress)."""
    opened = await sync_to_async(_prepare_copy)(credential, bucket, key, source, conditions, new, precondition)
    try:
        info = await asyncio.to_thread(_write_copy, opened, bucket, key, new, precondition)
    finally:
        os.close(opened.fd)
    await services.object_stored(credential=credential, bucket=bucket, info=info, client_ip=client_ip)
    return info


# --- UploadPartCopy --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopiedPart:
    etag: str
    checksum: tuple[str, bytes] | None


def _check_range(byte_range: tuple[int, int] | None, size: int) -> tuple[int, int]:
    """(offset, length) of the bytes to copy: the range, or the whole source."""
    if byte_range is None:
        first, last = 0, size - 1
    else:
        first, last = byte_range
        if last >= size:
            raise errors.InvalidArgument(
                f"Range specified is not valid for source object of size: {size}",
                ArgumentName="x-amz-copy-source-range",
            )
    length = last - first + 1
    if length > services.MAX_PART_BYTES:
        raise errors.InvalidRequest(f"A part is at most {services.MAX_PART_BYTES} bytes; copy a smaller range.")
    return first, max(length, 0)


def _copy_part_file(
    root: Path, src_fd: int, offset: int, length: int, algorithm: str
) -> tuple[Path, bytes, tuple[str, bytes] | None]:
    """The range copied into a temporary file, its MD5 and (if the upload has one) checksum."""
    fd, tmp_path = store.temp_file(root)
    with store.discarded_on_error(tmp_path):
        try:
            copy_range(src_fd, fd, offset, length)
            md5 = hashlib.md5()
            digest = checksums.new_checksum(algorithm) if algorithm else None
            digest_range(src_fd, offset, length, [md5, *([digest] if digest else [])])
        finally:
            os.close(fd)
    return tmp_path, md5.digest(), (algorithm, digest.digest()) if digest else None


def _prepare_part(
    credential: Credential, bucket: str, key: str, upload_id: str, source: CopySource, conditions: CopyConditions
) -> tuple[Path, multipart.Upload, int, store.ObjectInfo]:
    root, upload = services.upload_for_writer(credential, bucket, key, upload_id)
    fd, info = _open_source(credential, source, conditions)
    return root, upload, fd, info


async def part_copy(
    *,
    credential: Credential,
    bucket: str,
    key: str,
    upload_id: str,
    number: int,
    source: CopySource,
    conditions: CopyConditions,
    byte_range: tuple[int, int] | None,
) -> CopiedPart:
    """UploadPartCopy: a range of `source` (or all of it) as part `number` of the upload."""
    root, upload, src_fd, info = await sync_to_async(_prepare_part)(
        credential, bucket, key, upload_id, source, conditions
    )
    try:
        offset, length = _check_range(byte_range, info.size)
        await asyncio.to_thread(store.check_free_space, root, length, settings.SIMPLETUNER_S3_MIN_FREE_BYTES)
        copy = partial(_copy_part_file, root, src_fd, offset, length, upload.checksum_algorithm)
        tmp_path, md5, checksum = await asyncio.to_thread(copy)
    finally:
        os.close(src_fd)
    store_part = partial(multipart.store_part, root, upload, number, tmp_path, md5, checksum)
    with store.discarded_on_error(tmp_path):
        etag = await multipart.under_lock(root, upload, store_part, exclusive=False)
    return CopiedPart(etag, checksum)
