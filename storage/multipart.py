"""Multipart uploads, kept as files: `{root}/.s3-uploads/{upload_id}/` holds `upload.json`
(bucket, key, content type, metadata, initiator, checksum algorithm and type) and one file per
part (`00001`, ...), each renamed in whole once verified, its MD5 and the checksum its request
carried in extended attributes (or, for a part kept in place, an empty file saying where its
bytes are: see below). Parts arrive in parallel and in any order; each is written by its own
request to its own file or its own byte range, so they never contend.

Whatever process dies whenever, what is on disk says where an upload stands:

- `{id}/upload.json` and no `{id}.done`: the upload is open (perhaps being completed).
- `{id}.done` (bucket, key, ETag): it was completed. A retried Complete gets the same answer,
  as S3 does, while the object is unchanged; anything else about the upload is NoSuchUpload.
  A `{id}/` still beside it is a crash's leftover, removed by the next Complete or cleanup.
- neither: no such upload (aborted, swept by cleanup, or never created).

Complete holds an exclusive flock on `upload.json` from checking the listed parts until the
upload is closed; Abort holds it exclusive, storing a part holds it shared (for its rename).
So a retried Complete, in this process or another, waits for the one assembling and then
answers its result; no part changes under an assembly; an Abort waits for a running Complete.
The kernel drops a flock when its holder dies, kill -9 included, so a crashed Complete leaves
an upload that is simply open again, and the next Complete assembles it from the start: no
stale lock to detect, no pid or boot id to compare. (flock needs a local filesystem, or NFSv4,
onto whose byte-range locks Linux maps it.) Waiters poll the lock from the event loop, so a
waiting request holds no thread.

Parts kept in place. Copying a GiB of parts into the object costs about as much CPU as
receiving it, so a part is written where it will be in the object when it can be: into the
upload's `slots` file at (number - 1) x the slot size, the size of the first part of at least
MIN_PART_SIZE to arrive (kept as the target of the `slot-size` symlink, created atomically).
Clients send equal parts and a smaller last one, so parts 1..n then lie end to end. A part
claims its slot first (`{number}.slot`, created exclusively under the upload's shared lock,
the slots file opened under it too): a slot is written once, a second upload of the same part
(a retry while the first still runs, or a later replacement) goes to a file of its own, as does
a part bigger than the slot or one arriving while a Complete or an Abort holds the lock. A
verified part in place is recorded as an empty part file whose PART_SLOT_XATTR says where its
bytes are; a failed one gives its claim back. Complete renames the slots file into place,
without copying a byte, when the listed parts are exactly the slots 1..n end to end, every claim
is one of theirs (no upload in flight could still write into the file) and the file ends with
the last one; otherwise it copies, from the slots file or the parts' own files. A crash after
that rename and before `{id}.done` leaves parts in place without their file: the retried
Complete answers with the object if it still has this assembly's ETag (NoSuchUpload otherwise).

Complete and its assembly, and what a crash during it leaves: storage/completion.py. `cleanup`
removes what idles past the TTL, except uploads whose lock is held.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from storage import checksums, clock, errors, store
from storage.paths import TMP_DIR, UPLOADS_DIR

T = TypeVar("T")

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_NUMBER = 10_000
_UPLOAD_ID_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
PART_XATTR = "user.cloudops.s3part"
PART_CHECKSUM_XATTR = "user.cloudops.s3part.checksum"  # "<algorithm>:<base64 digest>"
PART_SLOT_XATTR = "user.cloudops.s3part.slot"  # "<offset>:<size>" of a part kept in SLOTS_FILE
UPLOAD_FILE = "upload.json"  # the upload's description, and the file its lock is taken on
SLOTS_FILE = "slots"  # parts kept in place (see the module's docstring)
SLOT_SIZE_LINK = "slot-size"  # a symlink whose target is the slot size, set by the first big part
CLAIM_SUFFIX = ".slot"
# Parts are kept in place when they can be; the recovery tests turn it off to crash a copy.
IN_PLACE = True
LOCK_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    content_type: str
    metadata: dict[str, str]
    initiator: str
    initiated: datetime
    # From CreateMultipartUpload's x-amz-checksum-algorithm / -type: every part must then
    # carry that checksum, and the object gets one built from them (storage.checksums).
    checksum_algorithm: str = ""
    checksum_type: str = ""


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    etag: str  # quoted MD5 hex
    mtime_ns: int
    checksum: tuple[str, bytes] | None = None  # (algorithm, raw digest) its request carried
    slot: int | None = None  # where its bytes start in the slots file, if kept in place

    @property
    def last_modified(self) -> datetime:
        return datetime.fromtimestamp(-(-self.mtime_ns // 1_000_000_000), tz=UTC)


def _uploads(root: Path) -> Path:
    return root / UPLOADS_DIR


def upload_dir(root: Path, upload_id: str) -> Path:
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


def create(
    root: Path,
    *,
    bucket: str,
    key: str,
    content_type: str,
    metadata: dict[str, str],
    initiator: str,
    checksum_algorithm: str = "",
    checksum_type: str = "",
) -> Upload:
    upload_id = secrets.token_urlsafe(32)
    folder = _uploads(root) / upload_id
    folder.mkdir(parents=True)
    upload = Upload(
        upload_id, bucket, key, content_type, metadata, initiator, clock.now(), checksum_algorithm, checksum_type
    )
    doc = {**upload.__dict__, "initiated": upload.initiated.isoformat()}
    (folder / UPLOAD_FILE).write_text(json.dumps(doc))
    if IN_PLACE:
        _create_slots(folder / SLOTS_FILE)
    return upload


def _create_slots(path: Path) -> None:
    """The slots file, unless the filesystem has no user xattrs (parts in place need them)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.setxattr(fd, PART_SLOT_XATTR, b"-")
        os.removexattr(fd, PART_SLOT_XATTR)
    except OSError:
        path.unlink()
    finally:
        os.close(fd)


def load(root: Path, upload_id: str, bucket: str, key: str) -> Upload:
    """The open upload, which must belong to `bucket`/`key`; NoSuchUpload otherwise."""
    folder = upload_dir(root, upload_id)
    if done_marker(root, upload_id).exists():
        raise errors.NoSuchUpload(UploadId=upload_id)
    try:
        doc = json.loads((folder / UPLOAD_FILE).read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        raise errors.NoSuchUpload(UploadId=upload_id) from None
    if doc["bucket"] != bucket or doc["key"] != key:
        raise errors.NoSuchUpload(UploadId=upload_id)
    doc["initiated"] = datetime.fromisoformat(doc["initiated"])
    return Upload(**doc)


# --- The upload's lock -----------------------------------------------------------------------------


def _try_flock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


async def _acquire(root: Path, upload: Upload, *, exclusive: bool) -> int:
    """A descriptor holding the upload's lock; NoSuchUpload if the upload closed meanwhile."""
    try:
        fd = os.open(upload_dir(root, upload.upload_id) / UPLOAD_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise errors.NoSuchUpload(UploadId=upload.upload_id) from None
    try:
        while not _try_flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH):
            await asyncio.sleep(LOCK_POLL_SECONDS)
        # Completed or aborted while we waited: the upload.json we hold was unlinked.
        closed = os.fstat(fd).st_nlink == 0
        if closed or done_marker(root, upload.upload_id).exists():
            if exclusive and not closed:  # a crash's leftover beside the marker
                await asyncio.to_thread(remove_upload, upload_dir(root, upload.upload_id))
            raise errors.NoSuchUpload(UploadId=upload.upload_id)
    except BaseException:
        os.close(fd)
        raise
    return fd


async def _run_locked(root: Path, upload: Upload, work: Callable[[], T], exclusive: bool) -> T:
    fd = await _acquire(root, upload, exclusive=exclusive)
    try:
        return await asyncio.to_thread(work)
    finally:
        os.close(fd)  # releases the lock


def _retrieve(task: asyncio.Future[T]) -> None:
    if not task.cancelled():
        task.exception()


async def under_lock(root: Path, upload: Upload, work: Callable[[], T], *, exclusive: bool) -> T:
    """Run `work` in a worker thread while holding the upload's lock (waiting for it first).

    The lock is held until `work` returns even if the caller is cancelled (the client went
    away): released while the thread still wrote, it would let a second Complete assemble into
    the same temporary file.
    """
    task = asyncio.ensure_future(_run_locked(root, upload, work, exclusive))
    task.add_done_callback(_retrieve)
    return await asyncio.shield(task)


# --- Parts ---------------------------------------------------------------------------------------


def claim_slot(root: Path, upload: Upload, number: int, size: int, max_object_bytes: int) -> tuple[int, int] | None:
    """Where part `number` of `size` bytes is to be written in place: (a descriptor on the slots
    file, the offset), its slot claimed; None when it goes to a file of its own."""
    if not IN_PLACE:
        return None
    folder = upload_dir(root, upload.upload_id)
    try:
        lock = os.open(folder / UPLOAD_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        # Not while a Complete or an Abort holds the upload (it may be renaming the file).
        if not _try_flock(lock, fcntl.LOCK_SH) or os.fstat(lock).st_nlink == 0:
            return None
        slot = _slot_size(folder, size)
        if slot is None or size > slot or (number - 1) * slot + size > max_object_bytes:
            return None
        try:
            os.close(os.open(folder / f"{number:05d}{CLAIM_SUFFIX}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return None
        try:
            return os.open(folder / SLOTS_FILE, os.O_WRONLY | os.O_CLOEXEC), (number - 1) * slot
        except OSError:
            release_slot(root, upload, number)
            return None
    finally:
        os.close(lock)  # releases the lock


def _slot_size(folder: Path, size: int) -> int | None:
    link = folder / SLOT_SIZE_LINK
    for _ in range(2):
        try:
            return int(os.readlink(link))
        except FileNotFoundError:
            if size < MIN_PART_SIZE:
                return None  # only a part that others may follow sets it
        except (OSError, ValueError):
            return None
        with contextlib.suppress(FileExistsError):
            os.symlink(str(size), link)
            return size
    return None


def release_slot(root: Path, upload: Upload, number: int) -> None:
    """Give back the slot of a part whose upload failed, for its retry."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError, errors.S3Error):
        (upload_dir(root, upload.upload_id) / f"{number:05d}{CLAIM_SUFFIX}").unlink()


def store_part(
    root: Path,
    upload: Upload,
    number: int,
    tmp_path: Path,
    md5: bytes,
    checksum: tuple[str, bytes] | None = None,
    slot: tuple[int, int] | None = None,
) -> str:
    """Move a verified part into the upload's folder (under its shared lock); returns its ETag.
    With `slot` (offset, size) the part's bytes are in the slots file and `tmp_path` is an
    empty file that records where."""
    etag = f'"{md5.hex()}"'
    try:
        os.setxattr(tmp_path, PART_XATTR, etag.encode())
        if checksum is not None:
            os.setxattr(tmp_path, PART_CHECKSUM_XATTR, f"{checksum[0]}:{checksums.encode(checksum[1])}".encode())
        if slot is not None:
            os.setxattr(tmp_path, PART_SLOT_XATTR, f"{slot[0]}:{slot[1]}".encode())
    except OSError:
        if slot is not None:
            raise  # a part in place is nothing without its record
    folder = upload_dir(root, upload.upload_id)
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


def _part_checksum(path: Path) -> tuple[str, bytes] | None:
    try:
        algorithm, _, value = os.getxattr(path, PART_CHECKSUM_XATTR).decode().partition(":")
        return algorithm, checksums.decode_b64_digest(value, algorithm, "part checksum")
    except (OSError, ValueError, errors.S3Error):
        return None


def _part_slot(path: Path) -> tuple[int, int] | None:
    try:
        offset, _, size = os.getxattr(path, PART_SLOT_XATTR).decode().partition(":")
        return int(offset), int(size)
    except (OSError, ValueError):
        return None


def parts(root: Path, upload: Upload) -> list[Part]:
    found = []
    try:
        entries = list(os.scandir(upload_dir(root, upload.upload_id)))
    except (FileNotFoundError, NotADirectoryError):
        raise errors.NoSuchUpload(UploadId=upload.upload_id) from None
    for entry in entries:
        if entry.name.isdigit() and entry.is_file(follow_symlinks=False):
            st = entry.stat(follow_symlinks=False)
            path = Path(entry.path)
            slot = _part_slot(path)
            size, offset = (slot[1], slot[0]) if slot is not None else (st.st_size, None)
            found.append(Part(int(entry.name), size, _part_etag(path), st.st_mtime_ns, _part_checksum(path), offset))
    return sorted(found, key=lambda part: part.number)


def assembly_name(upload_id: str) -> str:
    return f"complete-{upload_id}"


def remove_upload(folder: Path) -> None:
    """Close an upload: its upload.json first (from then on it does not exist), then its parts."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        (folder / UPLOAD_FILE).unlink()
    shutil.rmtree(folder, ignore_errors=True)


def abort(root: Path, upload: Upload) -> None:
    """Remove the upload and what a crashed Complete of it left (under its exclusive lock)."""
    remove_upload(upload_dir(root, upload.upload_id))
    store.discard(root / TMP_DIR / assembly_name(upload.upload_id))


def done_marker(root: Path, upload_id: str) -> Path:
    return _uploads(root) / f"{upload_id}.done"


def _remove_unless_busy(folder: Path) -> bool:
    """Remove an upload folder unless a Complete (or Abort) holds its lock; True if removed."""
    try:
        fd = os.open(folder / UPLOAD_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # no upload.json: a half-removed upload, or an old `.completing` folder
        shutil.rmtree(folder, ignore_errors=True)
        return True
    try:
        if not _try_flock(fd, fcntl.LOCK_EX):
            return False
        remove_upload(folder)
        return True
    finally:
        os.close(fd)


def cleanup(root: Path, *, older_than: float) -> tuple[int, int]:
    """Remove abandoned uploads, leftover temporary files and old `.done` markers.

    Returns (uploads removed, temporary files removed).
    """
    uploads = temps = 0
    for path in store.stale_entries(root, older_than, now=clock.now().timestamp()):
        if path.is_dir():
            if _remove_unless_busy(path):
                uploads += path.parent.name == UPLOADS_DIR
        else:
            store.discard(path)
            temps += path.parent.name != UPLOADS_DIR
    return uploads, temps
