"""Multipart uploads, kept as files: `{root}/.s3-uploads/{upload_id}/` holds `upload.json`
(bucket, key, content type, metadata, initiator) and one file per part (`00001`, ...), each
renamed in whole once verified, its MD5 in an extended attribute.

Parts arrive in parallel and in any order; each is its own file, so they never contend.
Complete renames the folder aside first (so a concurrent complete, abort or part upload
cannot interleave), checks the listed parts, streams them into one temporary file
(copy_file_range: the kernel copies, no bytes pass through Python) and renames that into
place. A short-lived `.done` marker lets a client that lost the first response retry
Complete and get the same answer, as S3 does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from storage import errors, store
from storage.paths import UPLOADS_DIR

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_NUMBER = 10_000
_UPLOAD_ID_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
PART_XATTR = "user.cloudops.s3part"


@dataclass(frozen=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    content_type: str
    metadata: dict[str, str]
    initiator: str
    initiated: datetime


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    etag: str  # quoted MD5 hex
    mtime_ns: int

    @property
    def last_modified(self) -> datetime:
        return datetime.fromtimestamp(-(-self.mtime_ns // 1_000_000_000), tz=UTC)


def _uploads(root: Path) -> Path:
    return root / UPLOADS_DIR


def _upload_dir(root: Path, upload_id: str) -> Path:
    if not _UPLOAD_ID_RE.match(upload_id):
        raise errors.NoSuchUpload()
    return _uploads(root) / upload_id


def part_number(value: str | None) -> int:
    try:
        number = int(value or "")
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_PART_NUMBER:
        raise errors.InvalidArgument(f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive.")
    return number


def create(root: Path, *, bucket: str, key: str, content_type: str, metadata: dict[str, str], initiator: str) -> Upload:
    upload_id = secrets.token_urlsafe(32)
    folder = _uploads(root) / upload_id
    folder.mkdir(parents=True)
    upload = Upload(upload_id, bucket, key, content_type, metadata, initiator, datetime.now(UTC))
    doc = {**upload.__dict__, "initiated": upload.initiated.isoformat()}
    (folder / "upload.json").write_text(json.dumps(doc))
    return upload


def load(root: Path, upload_id: str, bucket: str, key: str, *, folder: Path | None = None) -> Upload:
    """The upload, which must belong to `bucket`/`key`; NoSuchUpload otherwise."""
    folder = folder or _upload_dir(root, upload_id)
    try:
        doc = json.loads((folder / "upload.json").read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        raise errors.NoSuchUpload(UploadId=upload_id) from None
    if doc["bucket"] != bucket or doc["key"] != key:
        raise errors.NoSuchUpload(UploadId=upload_id)
    doc["initiated"] = datetime.fromisoformat(doc["initiated"])
    return Upload(**doc)


def store_part(root: Path, upload: Upload, number: int, tmp_path: Path, md5: bytes) -> str:
    """Move a verified part into the upload's folder; returns its ETag."""
    etag = f'"{md5.hex()}"'
    with contextlib.suppress(OSError):
        os.setxattr(tmp_path, PART_XATTR, etag.encode())
    folder = _upload_dir(root, upload.upload_id)
    try:
        os.replace(tmp_path, folder / f"{number:05d}")
    except FileNotFoundError:
        raise errors.NoSuchUpload(UploadId=upload.upload_id) from None
    os.utime(folder)  # activity keeps an upload away from the abandoned-upload cleanup
    return etag


def _part_etag(path: Path) -> str:
    try:
        return os.getxattr(path, PART_XATTR).decode()
    except OSError:
        digest = hashlib.md5()
        with path.open("rb") as f:
            while chunk := f.read(1024 * 1024):
                digest.update(chunk)
        return f'"{digest.hexdigest()}"'


def parts(root: Path, upload: Upload, *, folder: Path | None = None) -> list[Part]:
    folder = folder or _upload_dir(root, upload.upload_id)
    found = []
    for entry in os.scandir(folder):
        if entry.name.isdigit() and entry.is_file(follow_symlinks=False):
            st = entry.stat(follow_symlinks=False)
            found.append(Part(int(entry.name), st.st_size, _part_etag(Path(entry.path)), st.st_mtime_ns))
    return sorted(found, key=lambda part: part.number)


def abort(root: Path, upload: Upload) -> None:
    shutil.rmtree(_upload_dir(root, upload.upload_id), ignore_errors=True)


def _normal_etag(etag: str) -> str:
    return etag.strip().strip('"').lower()


def _done_marker(root: Path, upload_id: str) -> Path:
    return _uploads(root) / f"{upload_id}.done"


def completed_before(root: Path, upload_id: str, bucket: str, key: str) -> store.ObjectInfo | None:
    """The object a previous Complete of this upload produced, if the client is retrying it."""
    try:
        doc = json.loads(_done_marker(root, upload_id).read_text())
    except (FileNotFoundError, ValueError, errors.S3Error):
        return None
    if doc.get("bucket") != bucket or doc.get("key") != key:
        return None
    try:
        info = store.stat_object(root, bucket, key)
    except errors.NoSuchKey:
        return None
    return info if info.etag == doc.get("etag") else None


def complete(
    root: Path, upload: Upload, listed: list[tuple[int, str]], *, max_object_bytes: int, min_free: int
) -> store.ObjectInfo:
    """Assemble the listed parts into the object; the upload is gone afterwards."""
    folder = _upload_dir(root, upload.upload_id)
    working = folder.with_name(folder.name + ".completing")
    try:
        folder.rename(working)
    except FileNotFoundError:
        raise errors.NoSuchUpload(UploadId=upload.upload_id) from None
    try:
        chosen = _check_listed(parts(root, upload, folder=working), listed, max_object_bytes)
        store.check_free_space(root, sum(p.size for p in chosen), min_free)
    except errors.S3Error:
        working.rename(folder)  # the client may fix its list and complete again
        raise
    info = _assemble(root, upload, working, chosen)
    _done_marker(root, upload.upload_id).write_text(
        json.dumps({"bucket": upload.bucket, "key": upload.key, "etag": info.etag})
    )
    shutil.rmtree(working, ignore_errors=True)
    return info


def _check_listed(available: list[Part], listed: list[tuple[int, str]], max_object_bytes: int) -> list[Part]:
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
                f"Part {number} was not uploaded, or its ETag does not match.", PartNumber=str(number)
            )
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < MIN_PART_SIZE:
            raise errors.EntityTooSmall(
                f"Part {part.number} is {part.size} bytes; every part but the last must be at least {MIN_PART_SIZE}.",
                PartNumber=str(part.number),
                ProposedSize=str(part.size),
                MinSizeAllowed=str(MIN_PART_SIZE),
            )
    if sum(part.size for part in chosen) > max_object_bytes:
        raise errors.EntityTooLarge(f"The object would exceed the maximum object size ({max_object_bytes} bytes).")
    return chosen


def _assemble(root: Path, upload: Upload, working: Path, chosen: list[Part]) -> store.ObjectInfo:
    md5s = hashlib.md5()
    fd, tmp_path = store.temp_file(root)
    try:
        for part in chosen:
            md5s.update(bytes.fromhex(_normal_etag(part.etag)))
            _append(fd, working / f"{part.number:05d}", part.size)
        etag = f'"{md5s.hexdigest()}-{len(chosen)}"'
        store.set_attrs(fd, store.ObjectAttrs(etag, upload.content_type, upload.metadata))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        store.discard(tmp_path)
        raise
    os.close(fd)
    try:
        return store.commit(root, upload.bucket, upload.key, tmp_path)
    except BaseException:
        store.discard(tmp_path)
        raise


def _append(out_fd: int, path: Path, size: int) -> None:
    with path.open("rb") as src:
        remaining = size
        try:
            while remaining:
                copied = os.copy_file_range(src.fileno(), out_fd, remaining)
                if copied == 0:
                    raise errors.InternalError("A part file is shorter than recorded.")
                remaining -= copied
        except OSError:
            # Filesystems without copy_file_range (or across devices): copy in user space.
            src.seek(size - remaining)
            with os.fdopen(os.dup(out_fd), "wb", closefd=True) as out:
                shutil.copyfileobj(src, out, 1024 * 1024)


def cleanup(root: Path, *, older_than: float, now: float | None = None) -> tuple[int, int]:
    """Remove abandoned uploads, leftover temporary files and old `.done` markers.

    Returns (uploads removed, temporary files removed).
    """
    uploads = temps = 0
    for path in store.stale_entries(root, older_than, now=now or time.time()):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            uploads += path.parent.name == UPLOADS_DIR
        else:
            store.discard(path)
            temps += path.parent.name != UPLOADS_DIR
    return uploads, temps
