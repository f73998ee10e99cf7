"""Copying bytes between files without passing them through Python where the kernel can.

Three ways, cheapest first:

1. A reflink (`FICLONE`): the new file shares the source's blocks until either is written
   (btrfs, XFS with reflink, bcachefs; ext4 answers EOPNOTSUPP at once). Whole files only:
   a range clone needs block-aligned offsets, which a part copy rarely has.
2. `copy_file_range`: the kernel copies (server-side on NFS 4.2, in the page cache elsewhere).
3. A plain pread/write loop, for filesystems (or a source on another filesystem, on older
   kernels) where neither works.

Reading a range to hash it (an ETag that must be an MD5 of the bytes, a checksum asked for)
is separate: `digest_range` reads the source once more, through the page cache the copy
just warmed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterable

from storage.checksums import Checksum

FICLONE = 0x40049409  # _IOW(0x94, 9, int), from linux/fs.h
CHUNK = 1024 * 1024
# What copy_file_range / FICLONE answer when this pair of files cannot use them.
_UNSUPPORTED = {errno.EXDEV, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENOTTY, errno.EBADF, errno.EPERM}


def reflink(src_fd: int, dst_fd: int) -> bool:
    """Make the empty file `dst_fd` a clone of `src_fd`; False where the filesystem cannot."""
    try:
        fcntl.ioctl(dst_fd, FICLONE, src_fd)
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return False
        raise
    return True


def copy_range(src_fd: int, dst_fd: int, offset: int, length: int) -> None:
    """Append `length` bytes of `src_fd` from `offset` to `dst_fd` (at its current end)."""
    done = 0
    with contextlib.suppress(OSError):
        done = _kernel_copy(src_fd, dst_fd, offset, length)
    if done < length:
        _plain_copy(src_fd, dst_fd, offset + done, length - done)


def _kernel_copy(src_fd: int, dst_fd: int, offset: int, length: int) -> int:
    """Bytes copied by copy_file_range before it stopped (0 if it cannot run at all)."""
    done = 0
    while done < length:
        try:
            copied = os.copy_file_range(src_fd, dst_fd, length - done, offset + done)
        except OSError as exc:
            if exc.errno in _UNSUPPORTED:
                return done
            raise
        if copied == 0:
            break  # the source is shorter than asked: the caller's plain copy says so
        done += copied
    return done


def _plain_copy(src_fd: int, dst_fd: int, offset: int, length: int) -> None:
    remaining = length
    while remaining:
        chunk = os.pread(src_fd, min(CHUNK, remaining), offset)
        if not chunk:
            raise OSError(errno.EIO, "the copy source is shorter than its recorded size")
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst_fd, view) :]
        offset, remaining = offset + len(chunk), remaining - len(chunk)


def digest_range(fd: int, offset: int, length: int, digests: Iterable[Checksum]) -> None:
    """Feed `length` bytes of `fd` from `offset` to each running digest."""
    chosen = list(digests)
    remaining = length
    while remaining:
        chunk = os.pread(fd, min(CHUNK, remaining), offset)
        if not chunk:
            raise OSError(errno.EIO, "the copy source is shorter than its recorded size")
        for digest in chosen:
            digest.update(chunk)
        offset, remaining = offset + len(chunk), remaining - len(chunk)
