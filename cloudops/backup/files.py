"""Backup files: names, private temporary files, atomic publication, listing and retention.

A backup is written to a hidden temporary file in its final directory, fsynced, and only
then given its name (and the directory fsynced), so a crash or a full disk never leaves a
partial file under a backup name, and a cron `find` never sees one.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from cloudops.backup.errors import StoreError

BACKUP_PREFIX = "jobs_backup_"
SAFETY_PREFIX = "jobs_pre_restore_"
# The README's `sqlite3 .backup` cron script names its files with `date +%Y%m%d_%H%M%S`; ours
# match its pattern, so one directory can hold both.
TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1024 * 1024
# jobs_backup_20240115_103000.db, jobs_backup_20240115_103000_2.db.gz (same second, second one)
_BACKUP_NAME = re.compile(r"^jobs_backup_\d{8}_\d{6}(?:_\d+)?\.db(?:\.gz)?$")


def backup_filename(prefix: str, when: datetime, *, gz: bool, attempt: int = 0) -> str:
    stamp = when.astimezone(UTC).strftime(TIMESTAMP_FORMAT)
    suffix = f"_{attempt + 1}" if attempt else ""
    return f"{prefix}{stamp}{suffix}.db{'.gz' if gz else ''}"


def is_backup_name(name: str) -> bool:
    """Names retention may delete: ours and the README's cron script's, nothing else."""
    return bool(_BACKUP_NAME.match(name))


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def temp_beside(final: Path) -> Path:
    """A new, empty, private (0600) hidden file in `final`'s directory."""
    while True:
        path = final.with_name(f".{final.name}.tmp-{secrets.token_hex(4)}")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            return path
        except FileExistsError:
            continue


def remove_stale_temps(directory: Path, now: datetime, max_age_seconds: float = 86400) -> list[Path]:
    """Temporary files of backups that were killed, untouched for a day (a running one writes)."""
    stale = [
        path for path in directory.glob(".jobs_*.tmp-*") if now.timestamp() - path.stat().st_mtime > max_age_seconds
    ]
    remove_quietly(*stale)
    return stale


def remove_quietly(*paths: Path) -> None:
    for path in paths:
        for candidate in (path, *(path.with_name(path.name + s) for s in ("-journal", "-wal", "-shm"))):
            candidate.unlink(missing_ok=True)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, final: Path) -> Path:
    """Give the complete, fsynced `tmp` the name `final`, replacing a file already there."""
    fsync_file(tmp)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return final


def publish_new(tmp: Path, name_for: Callable[[int], str]) -> Path:
    """Like `publish`, but never replaces a file: tries name_for(0), name_for(1), ...

    A hard link fails if the name exists, so two backups in the same second (or two
    concurrent runs) each get their own file.
    """
    fsync_file(tmp)
    for attempt in range(1000):
        final = tmp.with_name(name_for(attempt))
        try:
            os.link(tmp, final)
        except FileExistsError:
            continue
        except OSError as exc:
            # Filesystems without hard links: check-then-rename (a race only there).
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP) or final.exists():
                raise
            os.replace(tmp, final)
        tmp.unlink(missing_ok=True)
        fsync_dir(final.parent)
        return final
    raise FileExistsError(f"no free backup name in {tmp.parent}")


def is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def gzip_to(source: Path, target: Path) -> None:
    with source.open("rb") as src, gzip.open(target, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst, _CHUNK)


def copy_hashing(source: Path, target: Path, *, gunzip: bool) -> str:
    """Copy (or decompress) `source` into `target`; returns the sha256 of `source`'s bytes.

    One read of the source, so the digest describes exactly the bytes that were restored.
    """
    digest = hashlib.sha256()
    with source.open("rb") as raw, target.open("wb") as dst:
        reader = _Hashing(raw, digest)
        src = gzip.GzipFile(fileobj=cast(BinaryIO, reader), mode="rb") if gunzip else reader
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
        # Bytes after the gzip stream (none, in a sound file) still belong to the digest.
        while reader.read(_CHUNK):
            pass
    return digest.hexdigest()


class _Hashing:
    """A binary file object that adds every byte read to a digest."""

    def __init__(self, raw: BinaryIO, digest: Any) -> None:
        self.raw, self.digest = raw, digest

    def read(self, size: int = -1) -> bytes:
        chunk = self.raw.read(size)
        self.digest.update(chunk)
        return chunk


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def list_backup_files(directory: Path) -> list[Path]:
    """`*.db` and `*.db.gz` files in `directory`, newest first (by modification time)."""
    if not directory.is_dir():
        return []
    found = [
        path
        for path in directory.iterdir()
        if not path.name.startswith(".") and path.name.endswith((".db", ".db.gz")) and path.is_file()
    ]
    return sorted(found, key=lambda path: (path.stat().st_mtime, path.name), reverse=True)


def check_retention(*, keep: int | None, older_than_days: int | None) -> None:
    """Refuse retention values that would delete every backup (keep=0, a negative age)."""
    if keep is not None and keep < 1:
        raise StoreError("keep must be at least 1 (the newest backup is always kept)")
    if older_than_days is not None and older_than_days < 0:
        raise StoreError("retention days must not be negative")


def prune_backup_files(
    directory: Path, *, keep: int | None, older_than_days: int | None, now: datetime, spare: Path | None = None
) -> list[Path]:
    """Delete backups (named `jobs_backup_*`, see `is_backup_name`) beyond retention.

    `keep`: keep the newest N, by the timestamp in the name. `older_than_days`: delete those
    modified more than N whole days ago, exactly `find -mtime +N`'s rule (as the README's
    cron script does). `spare` (the backup just written) is never deleted. Safety copies and files with
    other names are never touched.
    """
    check_retention(keep=keep, older_than_days=older_than_days)
    candidates = sorted(
        (path for path in list_backup_files(directory) if is_backup_name(path.name)),
        key=lambda path: _name_order(path.name),
        reverse=True,
    )
    doomed: list[Path] = []
    if keep is not None:
        doomed += candidates[keep:]
    if older_than_days is not None:
        cutoff = now.timestamp()
        doomed += [p for p in candidates if int((cutoff - p.stat().st_mtime) // 86400) > older_than_days]
    removed = []
    for path in dict.fromkeys(doomed):
        if spare is not None and path == spare:
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _name_order(name: str) -> tuple[str, int]:
    # jobs_backup_YYYYmmdd_HHMMSS[_N].db[.gz]: the stamp, then the same-second counter.
    stem = name.removeprefix(BACKUP_PREFIX).split(".", 1)[0]
    stamp, _, counter = stem[:15], stem[15:16], stem[16:]
    return stamp, int(counter) if counter.isdigit() else 0
