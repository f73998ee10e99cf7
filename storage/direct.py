"""Upload writes that bypass the page cache (O_DIRECT) where alignment and the file system allow.

An uploaded body is written once and read rarely (a checkpoint fetched later, if ever), so
copying it into the page cache on the way costs CPU for nothing: on the bench machine (a
virtual machine that hands freed memory back to its host) a buffered `pwrite` of 1 GiB costs
0.3-3 CPU seconds (page allocation, the copy, the per-page file system work), a direct one 0.08.
O_DIRECT wants block-aligned memory, offsets and lengths, so the whole aligned blocks of a write
go direct and the rest (the unaligned end of a body, a part at an unaligned offset) through the
page cache. Where the file system refuses O_DIRECT, every byte goes through the page cache, as
without it. Durability is unchanged: objects are fsynced before they become visible either way.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os

# Memory, offsets and lengths of direct writes are multiples of this: the largest logical block
# size in common use (512 is the smallest).
ALIGN = 4096


def aligned_buffer(size: int) -> memoryview:
    """`size` writable bytes that start at an ALIGN boundary (a bytearray, so glibc's malloc
    serves it as it serves every other buffer of the process)."""
    raw = bytearray(size + ALIGN)
    start = -_address(memoryview(raw)) % ALIGN
    return memoryview(raw)[start : start + size]


def write(fd: int, data: bytearray | memoryview, offset: int, *, direct: bool) -> None:
    """Write all of `data` at `offset`; with `direct`, its whole aligned blocks with O_DIRECT."""
    view = memoryview(data)
    blocks = len(view) - len(view) % ALIGN
    if direct and blocks and offset % ALIGN == 0 and not view.readonly and _address(view) % ALIGN == 0:
        done = _write_direct(fd, view[:blocks], offset)
        view, offset = view[done:], offset + done
    pwrite_all(fd, view, offset)


def pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _write_direct(fd: int, view: memoryview, offset: int) -> int:
    """How many bytes of `view` went out with O_DIRECT: all of them, or fewer (none when the
    file system refuses the flag) for the caller to write through the page cache."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT)
    except OSError:
        return 0
    done = 0
    try:
        while done < len(view):
            done += os.pwrite(fd, view[done:], offset + done)
    except OSError as error:
        # EINVAL: an alignment this device does not take (or a short write left the rest
        # unaligned); the page cache takes the rest. Anything else (ENOSPC, EIO) is the caller's.
        if error.errno != errno.EINVAL:
            raise
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)  # the descriptor is left as it was given
    return done


def _address(view: memoryview) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(view))  # the export ends with the c_char
