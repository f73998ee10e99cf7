"""MD5 for S3 ETags, computed for all of the process's uploads at once.

Every byte uploaded is MD5-hashed (a part's ETag is its MD5), and one MD5 stream costs about
5 CPU cycles per byte whatever the implementation: the largest cost of an upload. The parts
of concurrent uploads are independent messages, so one thread (`_Lanes`) hashes up to 16 of
them side by side in the SIMD lanes of storage/native/md5lanes.c: with 4 at once an MD5 costs
about a third of the CPU of hashlib's, with 16 a tenth (bench/README.md). Where that library is
not built (no C compiler when `make` ran), `new()` returns hashlib's MD5, hashed on a small
pool as before, and nothing else changes.

An `Md5` takes one update at a time: `submit(data)` returns a future, and `data` must not
change until it is done.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import struct
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from hashlib import md5 as hashlib_md5
from pathlib import Path
from typing import Protocol

logger = logging.getLogger("simpletuner.cloud.storage")

LIBRARY = Path(__file__).resolve().parent / "native" / "libmd5lanes.so"
INITIAL_STATE = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)
BLOCK = 64
# Updates smaller than this are hashed by the caller's thread (a hand-off costs more).
INLINE_BYTES = 64 * 1024
# Blocks per lane per call of the lane kernel (128 KiB): a new upload joins the lanes within
# one call, a fraction of a millisecond.
SLICE_BLOCKS = 2048
# Hashing alone is quick enough that the parts of concurrent uploads seldom overlap by
# themselves, so an update may wait for those of the other uploads that are sending (a stream
# counts as sending if it gave an update within LIVE_SECONDS). Its stream fills its next batch
# meanwhile (storage/body.py), so it waits at most WAIT_SHARE of the time its stream took to
# send its last batch (the moving average over all streams for a stream's first update), and
# never more than MAX_WAIT_SECONDS: an upload that waited longer than it takes to send would
# slow down. Waiting happens only while fewer updates are here than streams are sending, so a
# lone upload never waits.
MAX_WAIT_SECONDS = 0.1
WAIT_SHARE = 0.5
FIRST_INTERVAL_SECONDS = 0.04  # until any stream has given two updates
LIVE_SECONDS = 0.5


class Hasher(Protocol):
    def submit(self, data: bytearray | memoryview) -> Future[None]: ...

    def close(self) -> None:
        """No more updates will come (so no other stream waits for this one's)."""

    def digest(self) -> bytes: ...


def _load(path: Path) -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(str(path))
    except OSError:
        return None
    for entry in (lib.md5_lanes, lib.md5_lanes_portable):  # the second: without AVX-512, for tests
        entry.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
        entry.restype = ctypes.c_int
    lib.md5_lanes_width.restype = ctypes.c_size_t
    return lib


_LIB = _load(LIBRARY)
WIDTH = _LIB.md5_lanes_width() if _LIB is not None else 0


def available() -> bool:
    return _LIB is not None


def new() -> Hasher:
    return Md5() if _LIB is not None else PooledMd5()


class Md5:
    """hashlib's MD5 as a future: whole blocks go to the lane thread, the rest waits in `_tail`."""

    def __init__(self) -> None:
        self._state = (ctypes.c_uint32 * 4)(*INITIAL_STATE)
        self._tail = b""
        self._length = 0
        self._pending: Future[None] | None = None

    def submit(self, data: bytearray | memoryview) -> Future[None]:
        if self._pending is not None and not self._pending.done():
            raise RuntimeError("an Md5 takes one update at a time")
        view = memoryview(data).cast("B")
        self._length += len(view)
        if self._tail:
            take = BLOCK - len(self._tail)
            self._tail += bytes(view[:take])
            view = view[take:]
            if len(self._tail) < BLOCK:
                return _done()
            _compress(self._state, _pinned(self._tail), 1)
            self._tail = b""
        whole = len(view) - len(view) % BLOCK
        self._tail = bytes(view[whole:])
        if whole < INLINE_BYTES:
            if whole:
                _compress(self._state, _pinned(view[:whole]), whole // BLOCK)
            return _done()
        self._pending = _lanes().submit(id(self), self._state, view[:whole])
        return self._pending

    def close(self) -> None:
        if self._pending is not None:
            _lanes().leave(id(self))

    def digest(self) -> bytes:
        if self._pending is not None:
            self._pending.result()
        self.close()
        state = (ctypes.c_uint32 * 4)(*self._state)
        padding = b"\x80" + bytes((55 - self._length) % BLOCK) + struct.pack("<Q", (8 * self._length) % 2**64)
        last = self._tail + padding
        _compress(state, _pinned(last), len(last) // BLOCK)
        return struct.pack("<4I", *state)

    def hexdigest(self) -> str:
        return self.digest().hex()


class PooledMd5:
    """hashlib's MD5, each update on a pool thread (hashlib releases the GIL for big buffers)."""

    _POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="s3-md5")

    def __init__(self) -> None:
        self._md5 = hashlib_md5()

    def submit(self, data: bytearray | memoryview) -> Future[None]:
        return self._POOL.submit(self._md5.update, data)

    def close(self) -> None:
        pass

    def digest(self) -> bytes:
        return self._md5.digest()

    def hexdigest(self) -> str:
        return self._md5.hexdigest()


class _Pinned:
    """A buffer's address for the kernel, and the objects that keep it valid."""

    def __init__(self, address: int, keep: object) -> None:
        self.address, self.keep = address, keep


def _pinned(view: bytes | bytearray | memoryview) -> _Pinned:
    view = memoryview(view)
    if view.readonly:  # ctypes gives the address of writable buffers only
        copy = bytearray(view)
        return _Pinned(ctypes.addressof(ctypes.c_char.from_buffer(copy)), copy)
    return _Pinned(ctypes.addressof(ctypes.c_char.from_buffer(view)), view)


def _compress(state: ctypes.Array[ctypes.c_uint32], data: _Pinned, blocks: int) -> None:
    """`blocks` blocks of one message on the calling thread."""
    assert _LIB is not None
    if _LIB.md5_lanes(state, (ctypes.c_void_p * 1)(data.address), 1, blocks) != 0:
        raise RuntimeError("md5_lanes refused its arguments")


def _done() -> Future[None]:
    future: Future[None] = Future()
    future.set_result(None)
    return future


class _Job:
    def __init__(self, state: ctypes.Array[ctypes.c_uint32], data: memoryview, deadline: float) -> None:
        self.state, self.data, self.deadline = state, _pinned(data), deadline
        self.blocks = len(data) // BLOCK
        self.done = 0
        self.future: Future[None] = Future()
        self.future.set_running_or_notify_cancel()  # cannot be cancelled: the lanes read `data`


class _Lanes(threading.Thread):
    """The thread that hashes the whole blocks of every upload's updates, up to WIDTH at once."""

    def __init__(self) -> None:
        super().__init__(name="s3-md5-lanes", daemon=True)
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.states = (ctypes.c_uint32 * (4 * WIDTH))()
        self.addresses = (ctypes.c_void_p * WIDTH)()
        self.sending: dict[int, float] = {}  # stream -> when it last gave an update
        self.sending_lock = threading.Lock()
        self.interval = FIRST_INTERVAL_SECONDS  # between a stream's updates, a moving average

    def submit(self, stream: int, state: ctypes.Array[ctypes.c_uint32], data: memoryview) -> Future[None]:
        now = time.monotonic()
        with self.sending_lock:
            last, self.sending[stream] = self.sending.get(stream), now
            interval = self.interval if last is None else now - last
            if last is not None:
                self.interval += (interval - self.interval) / 8
        job = _Job(state, data, now + min(MAX_WAIT_SECONDS, interval * WAIT_SHARE))
        self.jobs.put(job)
        return job.future

    def leave(self, stream: int) -> None:
        with self.sending_lock:
            self.sending.pop(stream, None)

    def run(self) -> None:
        active: list[_Job] = []
        while True:
            if not active:
                active.append(self.jobs.get())
            self._gather(active)
            while len(active) < WIDTH:
                try:
                    active.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            try:
                self._step(active)
            except BaseException as error:  # every waiter hears of it; the thread lives on
                logger.exception("MD5 lane kernel failed")
                for job in active:
                    job.future.set_exception(error)
                active.clear()
                continue
            for job in [job for job in active if job.done == job.blocks]:
                active.remove(job)
                job.future.set_result(None)

    def _gather(self, active: list[_Job]) -> None:
        """Wait until every stream that is sending has an update here, or an update's deadline."""
        now = time.monotonic()
        with self.sending_lock:
            for stream in [s for s, seen in self.sending.items() if now - seen > LIVE_SECONDS]:
                del self.sending[stream]
            expected = min(WIDTH, len(self.sending))
        while len(active) < expected and (wait := min(job.deadline for job in active) - time.monotonic()) > 0:
            try:
                active.append(self.jobs.get(timeout=wait))
            except queue.Empty:
                return

    def _step(self, active: list[_Job]) -> None:
        assert _LIB is not None
        blocks = min(SLICE_BLOCKS, *(job.blocks - job.done for job in active))
        for lane, job in enumerate(active):
            ctypes.memmove(ctypes.byref(self.states, 16 * lane), job.state, 16)
            self.addresses[lane] = job.data.address + BLOCK * job.done
        if _LIB.md5_lanes(self.states, self.addresses, len(active), blocks) != 0:
            raise RuntimeError("md5_lanes refused its arguments")
        for lane, job in enumerate(active):
            ctypes.memmove(job.state, ctypes.byref(self.states, 16 * lane), 16)
            job.done += blocks


_THREAD: _Lanes | None = None
_THREAD_LOCK = threading.Lock()


def _lanes() -> _Lanes:
    global _THREAD
    if _THREAD is None:
        with _THREAD_LOCK:
            if _THREAD is None:
                thread = _Lanes()
                thread.start()
                _THREAD = thread
    return _THREAD


def _forget_thread() -> None:
    global _THREAD, _THREAD_LOCK
    _THREAD, _THREAD_LOCK = None, threading.Lock()  # a forked child has none of its parent's threads


os.register_at_fork(after_in_child=_forget_thread)
