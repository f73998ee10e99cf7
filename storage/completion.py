"""Completing a multipart upload (storage/multipart.py keeps the upload, its lock and parts).

Under the lock Complete checks the listed parts, copies them into `.s3-tmp/complete-{id}`
(copy_file_range: the kernel copies, no bytes pass through Python), fsyncs it and renames it
into place, writes `{id}.done` (temp file and rename), then closes the upload: `upload.json`
goes first, then the parts. A crash at any point leaves either the open upload (and at most a
stale `complete-{id}`, which the next Complete truncates and an Abort removes) or the done
marker; the object is the previous one or the whole new one, never a partial one. A Complete
refused on the way (a part missing, the key now a folder, the disk full) leaves the upload as
it was: fix and retry, or abort.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage import checksums, errors, multipart, store
from storage.preconditions import WritePrecondition


def _normal_etag(etag: str) -> str:
    return etag.strip().strip('"').lower()


def completed_before(root: Path, upload_id: str, bucket: str, key: str) -> store.ObjectInfo | None:
    """The object a previous Complete of this upload produced, if the client is retrying it."""
    try:
        doc = json.loads(multipart.done_marker(root, upload_id).read_text())
    except (FileNotFoundError, ValueError, errors.S3Error):
        return None
    if doc.get("bucket") != bucket or doc.get("key") != key:
        return None
    try:
        info = store.stat_object(root, bucket, key)
    except errors.NoSuchKey:
        return None
    return info if info.etag == doc.get("etag") else None


@dataclass(frozen=True)
class Checks:
    """What a Complete is checked against, before it starts answering and again under the lock."""

    max_object_bytes: int
    min_free: int
    precondition: WritePrecondition | None = None
    claims: checksums.Claimed | None = None
    expected_size: int | None = None  # x-amz-mp-object-size


def check_complete(
    root: Path, upload: multipart.Upload, listed: list[tuple[int, str]], checks: Checks
) -> list[multipart.Part]:
    """The parts Complete would assemble, or the S3 error it would answer: a part missing or
    too small, the object too big or not the `expected_size` the client stated
    (x-amz-mp-object-size), a checksum stated that is not the parts' (see `_check_claims`),
    the disk too full, the key a folder (or under a file), a conditional write's precondition
    failing."""
    chosen = _check_listed(multipart.parts(root, upload), listed, checks.max_object_bytes)
    if checks.expected_size is not None:
        _check_size(chosen, checks.expected_size)
    if checks.claims is not None:
        _check_claims(upload, chosen, checks.claims)
    store.check_free_space(root, sum(part.size for part in chosen), checks.min_free)
    store.check_key_free(root, upload.bucket, upload.key)
    if checks.precondition is not None:
        checks.precondition.check(store.current(root, upload.bucket, upload.key))
    return chosen


def complete(root: Path, upload: multipart.Upload, listed: list[tuple[int, str]], checks: Checks) -> store.ObjectInfo:
    """Assemble the listed parts into the object and close the upload (under its exclusive
    lock: see `multipart.under_lock`). On an error the upload stays open, as it was; so it does
    when the precondition fails (checked first, and again atomically with the final rename)."""
    chosen = check_complete(root, upload, listed, checks)
    info = _assemble(root, upload, chosen, checks.precondition)
    marker = multipart.done_marker(root, upload.upload_id)
    pending = marker.with_name(marker.name + ".tmp")
    pending.write_text(json.dumps({"bucket": upload.bucket, "key": upload.key, "etag": info.etag}))
    os.replace(pending, marker)
    multipart.remove_upload(multipart.upload_dir(root, upload.upload_id))
    return info


def _check_listed(
    available: list[multipart.Part], listed: list[tuple[int, str]], max_object_bytes: int
) -> list[multipart.Part]:
    if not listed:
        raise errors.MalformedXML("CompleteMultipartUpload must list at least one part.")
    numbers = [number for number, _ in listed]
    if numbers != sorted(set(numbers)):
        raise errors.InvalidPartOrder()
    by_number = {part.number: part for part in available}
    chosen = []
    for number, etag in listed:
        part = by_number.get(number)
        if part is None or _normal_etag(part.etag) != _normal_etag(etag):
            raise errors.InvalidPart(
                f"multipart.Part {number} was not uploaded, or its ETag does not match.", PartNumber=str(number)
            )
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < multipart.MIN_PART_SIZE:
            raise errors.EntityTooSmall(
                f"multipart.Part {part.number} is {part.size} bytes; every part but the last must be at least {multipart.MIN_PART_SIZE}.",
                PartNumber=str(part.number),
                ProposedSize=str(part.size),
                MinSizeAllowed=str(multipart.MIN_PART_SIZE),
            )
    if sum(part.size for part in chosen) > max_object_bytes:
        raise errors.EntityTooLarge(f"The object would exceed the maximum object size ({max_object_bytes} bytes).")
    return chosen


def _check_size(chosen: list[multipart.Part], expected_size: int) -> None:
    """The object size a Complete states (x-amz-mp-object-size) against the listed parts' total:
    InvalidRequest when they differ, as S3 answers, before anything is assembled."""
    actual = sum(part.size for part in chosen)
    if actual != expected_size:
        raise errors.InvalidRequest(
            f"x-amz-mp-object-size states {expected_size} bytes, but the listed parts total {actual} bytes."
        )


def _check_claims(upload: multipart.Upload, chosen: list[multipart.Part], claims: checksums.Claimed) -> None:
    """S3 compares the checksums a Complete states with those it holds: each listed part's
    with the one its UploadPart carried (InvalidPart), the whole object's with the one built
    from the parts (BadDigest). Built from the parts' stored digests: nothing is read again."""
    for part in chosen:
        checksums.check_part(part.number, part.checksum, claims.parts.get(part.number, {}))
    if claims.whole or claims.whole_type:
        built = _object_checksum(upload, chosen)
        kind = built.get("checksum_type", upload.checksum_type)
        computed = built.get("checksums", {}).get(upload.checksum_algorithm)
        checksums.check_whole(claims, upload.checksum_algorithm, kind, computed)


def _object_checksum(upload: multipart.Upload, chosen: list[multipart.Part]) -> dict[str, Any]:
    """The object's checksum from its parts', when the upload declared an algorithm (every part
    then carried it: storage.services refuses a part without)."""
    algorithm = upload.checksum_algorithm
    found = [(part.checksum[1], part.size) for part in chosen if part.checksum and part.checksum[0] == algorithm]
    if not algorithm or len(found) != len(chosen):
        return {}
    kind = upload.checksum_type or checksums.checksum_type(None, algorithm)
    return {"checksums": {algorithm: checksums.combined(algorithm, kind, found)}, "checksum_type": kind}


def _assemble(
    root: Path, upload: multipart.Upload, chosen: list[multipart.Part], precondition: WritePrecondition | None
) -> store.ObjectInfo:
    md5s = hashlib.md5()
    for part in chosen:
        md5s.update(bytes.fromhex(_normal_etag(part.etag)))
    etag = f'"{md5s.hexdigest()}-{len(chosen)}"'
    runs = store.part_runs([part.size for part in chosen])
    attrs = store.ObjectAttrs(etag, upload.content_type, upload.metadata, runs, **_object_checksum(upload, chosen))
    check = precondition.check if precondition is not None else None
    folder = multipart.upload_dir(root, upload.upload_id)
    if _in_place(folder, chosen):
        return _commit_in_place(root, upload, folder / multipart.SLOTS_FILE, attrs, check)
    if any(part.slot is not None for part in chosen) and not (folder / multipart.SLOTS_FILE).exists():
        return _renamed_before(root, upload, etag)
    # A fixed name: a Complete retried after a crash truncates the attempt it replaces.
    fd, tmp_path = store.work_file(root, multipart.assembly_name(upload.upload_id))
    with store.discarded_on_error(tmp_path):
        try:
            for part in chosen:
                if part.slot is None:
                    _append(fd, folder / f"{part.number:05d}", part.size)
                else:
                    _append(fd, folder / multipart.SLOTS_FILE, part.size, part.slot)
            store.set_attrs(fd, attrs)
            os.fsync(fd)
        finally:
            os.close(fd)
        return store.commit(root, upload.bucket, upload.key, tmp_path, check)


def _in_place(folder: Path, chosen: list[multipart.Part]) -> bool:
    """The listed parts are the slots 1..n end to end, nothing else claimed a slot (no upload in
    flight writes into the file: claims are made under the lock Complete holds) and the file
    ends where the last part does: the slots file is the object."""
    end = 0
    for part in chosen:
        if part.slot != end:
            return False
        end += part.size
    claims = {entry for entry in os.listdir(folder) if entry.endswith(multipart.CLAIM_SUFFIX)}
    if claims != {f"{part.number:05d}{multipart.CLAIM_SUFFIX}" for part in chosen}:
        return False
    try:
        return os.stat(folder / multipart.SLOTS_FILE).st_size == end
    except FileNotFoundError:
        return False


def _commit_in_place(
    root: Path, upload: multipart.Upload, slots: Path, attrs: store.ObjectAttrs, check: Callable[..., None] | None
) -> store.ObjectInfo:
    """The slots file becomes the object; refused (a precondition, a folder on the key), it
    stays the upload's, as it was."""
    fd = os.open(slots, os.O_WRONLY | os.O_CLOEXEC)
    try:
        store.set_attrs(fd, attrs)
        os.fsync(fd)
    finally:
        os.close(fd)
    return store.commit(root, upload.bucket, upload.key, slots, check)


def _renamed_before(root: Path, upload: multipart.Upload, etag: str) -> store.ObjectInfo:
    """Parts in place whose slots file is gone: a Complete renamed it into place and died before
    its done marker. The object is that Complete's if it still has this assembly's ETag."""
    current = store.current(root, upload.bucket, upload.key)
    if current is None or current.etag != etag:
        raise errors.NoSuchUpload(UploadId=upload.upload_id)
    return current


def _append(out_fd: int, path: Path, size: int, offset: int = 0) -> None:
    with path.open("rb") as src:
        remaining = size
        try:
            while remaining:
                copied = os.copy_file_range(src.fileno(), out_fd, remaining, offset + size - remaining)
                if copied == 0:
                    raise errors.InternalError("A part file is shorter than recorded.")
                remaining -= copied
        except OSError:
            # Filesystems without copy_file_range (or across devices): copy in user space.
            src.seek(offset + size - remaining)
            with os.fdopen(os.dup(out_fd), "wb", closefd=True) as out:
                _copy_bytes(src, out, remaining)


def _copy_bytes(src: Any, out: Any, count: int) -> None:
    while count:
        chunk = src.read(min(count, 1024 * 1024))
        if not chunk:
            raise errors.InternalError("A part file is shorter than recorded.")
        out.write(chunk)
        count -= len(chunk)
