"""Bucket names and object keys as safe paths under an output root.

A key becomes a path `{root}/{bucket}/{key}` only after it is proven harmless: no empty, "."
or ".." segment, no absolute path, no NUL or backslash, no segment longer than a file name may
be. Directories are then walked one segment at a time with O_NOFOLLOW relative to the parent's
file descriptor, so a symlink planted anywhere below the root (or swapped in mid-request) is
never followed: the request fails instead of escaping.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage import errors
from storage.xml import NOT_XML

MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 255
# Control characters cannot appear in S3's XML listings and confuse every shell and log.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
# Names under the output root that are ours, never buckets (bucket names start alphanumeric).
TMP_DIR = ".s3-tmp"
UPLOADS_DIR = ".s3-uploads"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def validate_bucket(bucket: str) -> str:
    if not _BUCKET_RE.match(bucket):
        raise errors.InvalidBucketName(f"The bucket name {bucket[:80]!r} is not valid.")
    return bucket


def key_segments(key: str) -> list[str]:
    """The path segments of `key`; refuses every key that could name something outside it."""
    if not key:
        raise errors.InvalidArgument("The object key is empty.")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise errors.KeyTooLongError(f"Keys are at most {MAX_KEY_BYTES} bytes.")
    if "\\" in key or _CONTROL_RE.search(key):
        raise errors.InvalidArgument("Object keys may not contain NUL, other control characters or backslashes.")
    if NOT_XML.search(key):
        raise errors.InvalidArgument(
            "Object keys must be valid UTF-8 text XML can carry (no surrogates, U+FFFE or U+FFFF)."
        )
    segments = key.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise errors.InvalidArgument(
                "Object keys may not start or end with '/', contain '//', or have '.' or '..' segments."
            )
        if len(segment.encode()) > MAX_SEGMENT_BYTES:
            raise errors.KeyTooLongError(f"Each '/'-separated part of a key is at most {MAX_SEGMENT_BYTES} bytes.")
    return segments


def listable(name: str) -> bool:
    """Whether a file name found on disk can be part of a key (files put there by other means
    may have names no request could create, and no listing could carry)."""
    return not ("\\" in name or _CONTROL_RE.search(name) or NOT_XML.search(name))


def key_path(root: Path, bucket: str, key: str) -> Path:
    """`{root}/{bucket}/{key}` for a validated bucket and key (for display and listings)."""
    return root.joinpath(validate_bucket(bucket), *key_segments(key))


def _open_dir(parent_fd: int, name: str, *, create: bool) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            raise
    # Another request may have created it meanwhile.
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=parent_fd)
    return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)


@contextmanager
def open_parent(root: Path, bucket: str, segments: list[str], *, create: bool) -> Iterator[int]:
    """A descriptor of the directory that holds the object's last segment.

    FileNotFoundError when (not creating and) a directory is missing; NotADirectoryError or
    ELOOP when a segment is a file or a symlink, which callers turn into S3 errors.
    """
    fds: list[int] = []
    try:
        if create:
            root.mkdir(parents=True, exist_ok=True)
        fds.append(os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW))
        for name in [bucket, *segments[:-1]]:
            fds.append(_open_dir(fds[-1], name, create=create))
        yield fds[-1]
    finally:
        for fd in fds:
            os.close(fd)


def is_conflict(exc: OSError) -> bool:
    """Whether an OSError means the key collides with a folder, file or symlink on disk."""
    return exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.EEXIST, errno.ENOTEMPTY)
