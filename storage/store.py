"""The file store: objects are plain files at `{root}/{bucket}/{key}`.

Uploads are written to a temporary file under `{root}/.s3-tmp` (the same filesystem, so the
final rename is atomic) and renamed into place only once complete and verified: a crash, a
disconnect or a bad checksum never leaves a partial object visible. An object's ETag, content
type and user metadata travel with the file as one extended attribute, set before the rename,
so file and metadata change together. Files written by other means (or on filesystems without
user xattrs) still work: they get an ETag derived from inode, size and mtime. The attribute
also keeps the checksums the client sent (returned on `x-amz-checksum-mode: ENABLED`) and,
for a multipart object, its part sizes (for GetObject with `partNumber`).

Every commit and delete holds an exclusive flock on the folder the object is in, from reading
what is there until the rename or unlink: that is what makes conditional writes
(`If-None-Match: *`, `If-Match`) a compare-and-swap; see `commit`.

Everything here is blocking file-system work; the views call it through asyncio.to_thread.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import mimetypes
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from storage import errors
from storage.paths import TMP_DIR, UPLOADS_DIR, is_conflict, key_segments, listable, open_parent, validate_bucket

XATTR = "user.cloudops.s3"
DEFAULT_CONTENT_TYPE = "binary/octet-stream"


@dataclass
class ObjectInfo:
    key: str
    size: int
    mtime_ns: int
    etag: str = ""
    content_type: str = DEFAULT_CONTENT_TYPE
    metadata: dict[str, str] = field(default_factory=dict)
    parts: list[tuple[int, int]] = field(default_factory=list)  # see ObjectAttrs
    checksums: dict[str, str] = field(default_factory=dict)
    checksum_type: str = ""
    etag_stored: bool = False  # False: a synthetic ETag (file written by other means)

    @property
    def multipart(self) -> bool:
        """Assembled from parts: S3's multipart ETag ends in `-<number of parts>`."""
        return "-" in self.etag.strip('"')

    @property
    def etag_is_md5(self) -> bool:
        """The ETag is the MD5 of the bytes (a single-request upload's): a copy may keep it."""
        return self.etag_stored and not self.multipart

    @property
    def last_modified(self) -> datetime:
        # S3 dates have second precision. Rounded up, so an object is never older than the
        # file it was uploaded from (`aws s3 sync` would otherwise upload it again).
        return datetime.fromtimestamp(-(-self.mtime_ns // 1_000_000_000), tz=UTC)


@dataclass(frozen=True)
class ObjectAttrs:
    """What is stored beside the bytes: S3's ETag (quoted), content type, x-amz-meta-*, the
    checksums given at upload ({"crc32c": base64}, `-N` suffixed when composite) and their type
    (COMPOSITE or FULL_OBJECT), and a multipart object's part sizes as runs of
    (size, count): clients upload equal parts, so this stays a few bytes where a list of 10,000
    sizes would not fit in the attribute (ext4 allows about 4 KiB per file)."""

    etag: str
    content_type: str = DEFAULT_CONTENT_TYPE
    metadata: dict[str, str] = field(default_factory=dict)
    parts: tuple[tuple[int, int], ...] = ()
    checksums: dict[str, str] = field(default_factory=dict)
    checksum_type: str = ""

    def encode(self, *, with_parts: bool = True) -> bytes:
        doc: dict[str, object] = {"etag": self.etag, "content_type": self.content_type, "meta": self.metadata}
        if self.parts and with_parts:
            doc["parts"] = [list(run) for run in self.parts]
        if self.checksums:
            doc["checksums"], doc["checksum_type"] = self.checksums, self.checksum_type
        return json.dumps(doc).encode()


def part_runs(sizes: list[int]) -> tuple[tuple[int, int], ...]:
    """Part sizes as runs of (size, count)."""
    runs: list[tuple[int, int]] = []
    for size in sizes:
        if runs and runs[-1][0] == size:
            runs[-1] = (size, runs[-1][1] + 1)
        else:
            runs.append((size, 1))
    return tuple(runs)


def _synthetic_etag(st: os.stat_result) -> str:
    return '"' + hashlib.md5(f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}".encode()).hexdigest() + '"'


def _info(key: str, st: os.stat_result, raw_attrs: bytes | None) -> ObjectInfo:
    info = ObjectInfo(key=key, size=st.st_size, mtime_ns=st.st_mtime_ns)
    attrs = {}
    if raw_attrs:
        with contextlib.suppress(ValueError):
            attrs = json.loads(raw_attrs)
    info.etag, info.etag_stored = attrs.get("etag") or _synthetic_etag(st), bool(attrs.get("etag"))
    info.content_type = attrs.get("content_type") or mimetypes.guess_type(key)[0] or DEFAULT_CONTENT_TYPE
    info.metadata = attrs.get("meta") or {}
    with contextlib.suppress(TypeError, ValueError):
        info.parts = [(int(size), int(count)) for size, count in attrs.get("parts") or []]
    info.checksums = attrs.get("checksums") or {}
    info.checksum_type = attrs.get("checksum_type") or ""
    return info


def _read_xattr(target: int | str) -> bytes | None:
    try:
        return (
            os.getxattr(target, XATTR, follow_symlinks=False) if isinstance(target, str) else os.getxattr(target, XATTR)
        )
    except OSError:
        return None


# --- Writing -------------------------------------------------------------------------------------


def temp_file(root: Path) -> tuple[int, Path]:
    """A new private temporary file on the same filesystem as the objects under `root`."""
    tmp_dir = root / TMP_DIR
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="put-")
    return fd, Path(name)


def work_file(root: Path, name: str) -> tuple[int, Path]:
    """`{root}/.s3-tmp/{name}`, created empty: for work that is retried under a lock (multipart
    assembly), so a retry truncates what a crashed attempt left instead of adding to it."""
    tmp_dir = root / TMP_DIR
    tmp_dir.mkdir(parents=True, exist_ok=True)
    path = tmp_dir / name
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(path, flags, 0o600), path


def discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@contextlib.contextmanager
def discarded_on_error(path: Path) -> Iterator[None]:
    """Remove the temporary file `path` if the block raises (a cancellation included)."""
    try:
        yield
    except BaseException:
        discard(path)
        raise


def set_attrs(fd: int, attrs: ObjectAttrs) -> None:
    try:
        os.setxattr(fd, XATTR, attrs.encode())
    except OSError as exc:
        if exc.errno not in (errno.E2BIG, errno.ENOSPC, errno.ERANGE) or not attrs.parts:
            return  # no user xattrs here: the object gets a synthetic ETag
        # Thousands of parts of differing sizes do not fit: keep the ETag and the rest, and
        # GetObject with partNumber answers that this object's part boundaries are unknown.
        with contextlib.suppress(OSError):
            os.setxattr(fd, XATTR, attrs.encode(with_parts=False))


def check_free_space(root: Path, incoming: int, min_free: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if free - incoming < min_free:
        raise errors.InsufficientStorage(
            f"Not enough free disk space: {incoming} bytes would leave less than the configured minimum free "
            f"({min_free} bytes; SIMPLETUNER_S3_MIN_FREE_BYTES)."
        )


def commit(
    root: Path, bucket: str, key: str, tmp_path: Path, check: Callable[[ObjectInfo | None], None] | None = None
) -> ObjectInfo:
    """Rename a complete, verified temporary file into place as `bucket/key` (atomic).

    `check` (a conditional write's precondition) sees the object the rename would replace, or
    None, and raises to refuse. It runs while this request holds an exclusive flock on the
    object's folder, which every commit and delete takes, so nothing can replace or remove the
    object between the check and the rename: two create-only writers of one key, in one
    process or several, cannot both see it absent. A lock rather than a create-only os.link:
    If-Match needs a compare-and-swap no single system call gives, and one mechanism serves
    both. A folder lock needs no lock file to create or clean up, is held only for a stat and
    a rename, and the kernel drops it if the process dies (NFS: see storage.multipart).
    """
    segments = key_segments(key)
    for attempt in range(3):
        try:
            with open_parent(root, validate_bucket(bucket), segments, create=True) as parent_fd:
                fcntl.flock(parent_fd, fcntl.LOCK_EX)  # released when open_parent closes it
                if check is not None:
                    check(_current_at(parent_fd, key, segments[-1]))
                os.replace(tmp_path, segments[-1], dst_dir_fd=parent_fd)
                st = os.stat(segments[-1], dir_fd=parent_fd, follow_symlinks=False)
                return _info(key, st, _read_xattr_at(parent_fd, segments[-1]))
        except FileNotFoundError:
            # A concurrent delete removed an empty folder on our path; walk it again.
            if attempt == 2 or not tmp_path.exists():
                raise
        except OSError as exc:
            if is_conflict(exc):
                raise errors.KeyConflict() from exc
            raise
    raise AssertionError("unreachable")


def _current_at(parent_fd: int, key: str, name: str) -> ObjectInfo | None:
    """The object named `name` in the folder `parent_fd`, None if there is none; KeyConflict
    if a folder (or anything but a file) has the name."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise errors.KeyConflict()
    return _info(key, st, _read_xattr_at(parent_fd, name))


def current(root: Path, bucket: str, key: str) -> ObjectInfo | None:
    """The object at `key` now, or None (for an early precondition check; racy, commit
    checks again)."""
    try:
        return stat_object(root, bucket, key)
    except errors.NoSuchKey:
        return None


def check_key_free(root: Path, bucket: str, key: str) -> None:
    """KeyConflict if `commit` would fail now: a folder on the key, or a file (or symlink)
    where one of its folders must be. Racy by nature; commit checks again."""
    segments = key_segments(key)
    try:
        with open_parent(root, validate_bucket(bucket), segments, create=False) as parent_fd:
            st = os.stat(segments[-1], dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    except OSError as exc:
        if is_conflict(exc):
            raise errors.KeyConflict() from exc
        raise
    if stat.S_ISDIR(st.st_mode):
        raise errors.KeyConflict()


def _read_xattr_at(dir_fd: int, name: str) -> bytes | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        return _read_xattr(fd)
    finally:
        os.close(fd)


# --- Reading -------------------------------------------------------------------------------------


def open_object(root: Path, bucket: str, key: str) -> tuple[int, ObjectInfo]:
    """An open descriptor on the object and its info; NoSuchKey unless it is a regular file."""
    segments = key_segments(key)
    try:
        with open_parent(root, validate_bucket(bucket), segments, create=False) as parent_fd:
            fd = os.open(segments[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EISDIR):
            raise errors.NoSuchKey(Key=key) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise errors.NoSuchKey(Key=key)
    return fd, _info(key, st, _read_xattr(fd))


def stat_object(root: Path, bucket: str, key: str) -> ObjectInfo:
    fd, info = open_object(root, bucket, key)
    os.close(fd)
    return info


def delete_object(root: Path, bucket: str, key: str) -> bool:
    """Remove the object and the folders it leaves empty; False if there was none."""
    segments = key_segments(key)
    try:
        with open_parent(root, validate_bucket(bucket), segments, create=False) as parent_fd:
            fcntl.flock(parent_fd, fcntl.LOCK_EX)  # not between a conditional write's check and rename
            st = os.stat(segments[-1], dir_fd=parent_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                return False
            os.unlink(segments[-1], dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return False
        raise
    _prune_empty_dirs(root / bucket, segments[:-1])
    return True


def _prune_empty_dirs(bucket_dir: Path, folders: list[str]) -> None:
    while folders:
        try:
            bucket_dir.joinpath(*folders).rmdir()
        except OSError:
            return  # not empty (or already gone): S3 has no folders, we just tidy up
        folders = folders[:-1]


# --- Listing -------------------------------------------------------------------------------------


def bucket_exists(root: Path, bucket: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(root / validate_bucket(bucket)).st_mode)
    except (OSError, errors.S3Error):
        return False


def bucket_names(root: Path) -> list[tuple[str, float]]:
    """(name, creation time) of each bucket folder under `root`."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    names = []
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        with contextlib.suppress(errors.S3Error):
            names.append((validate_bucket(entry.name), entry.stat(follow_symlinks=False).st_mtime))
    return sorted(names)


def walk_keys(root: Path, bucket: str, prefix: str) -> list[tuple[str, os.stat_result]]:
    """Every (key, stat) in the bucket starting with `prefix`, in S3 order (UTF-8 bytes).

    Only the folder the prefix points into is walked. Symlinks are neither listed nor followed,
    nor are names no key could have (see paths.listable).
    """
    folder, _, _ = prefix.rpartition("/")
    try:
        segments = key_segments(folder + "/x") if folder else ["x"]
    except errors.S3Error:
        return []  # a prefix no valid key can have
    found: list[tuple[str, os.stat_result]] = []
    try:
        with open_parent(root, validate_bucket(bucket), segments, create=False) as start_fd:
            _walk(start_fd, folder + "/" if folder else "", found)
    except OSError:
        return []
    # Python compares str by code point, which is the UTF-8 byte order S3 uses.
    return sorted((item for item in found if item[0].startswith(prefix)), key=lambda item: item[0])


def _walk(dir_fd: int, key_prefix: str, found: list[tuple[str, os.stat_result]]) -> None:
    with os.scandir(dir_fd) as entries:
        children = list(entries)
    for entry in children:
        if not listable(entry.name):
            continue
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISREG(st.st_mode):
            found.append((key_prefix + entry.name, st))
        elif stat.S_ISDIR(st.st_mode):
            try:
                child = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                _walk(child, key_prefix + entry.name + "/", found)
            finally:
                os.close(child)


def describe(root: Path, bucket: str, key: str, st: os.stat_result) -> ObjectInfo:
    """ObjectInfo for a listed key (reads its stored ETag)."""
    path = str(root.joinpath(bucket, *key.split("/")))
    return _info(key, st, _read_xattr(path))


# --- Maintenance ---------------------------------------------------------------------------------


def stale_entries(root: Path, older_than: float, now: float) -> Iterator[Path]:
    """Temporary files and multipart upload folders untouched for `older_than` seconds at `now`
    (a Unix time)."""
    for name in (TMP_DIR, UPLOADS_DIR):
        try:
            entries = list(os.scandir(root / name))
        except FileNotFoundError:
            continue
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                if now - entry.stat(follow_symlinks=False).st_mtime > older_than:
                    yield Path(entry.path)
