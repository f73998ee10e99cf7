"""Request bodies streamed from the ASGI server to a file, verified on the way.

Django reads a whole request body into a temporary file before any view runs, and daphne
holds it all in memory before Django sees it (django/daphne#483). For the storage endpoint
cloudops.bodies hands the view a `RequestBodyStream` instead: the view authenticates first
(so a bad signature costs no upload, and `Expect: 100-continue` is answered only then),
then pulls the body chunk by chunk into a temporary file while hashing it. Memory per
upload stays at a few MiB whatever the object size.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from storage import direct, errors
from storage import md5 as md5_lanes
from storage.checksums import Checksum, new_checksum
from storage.chunked import AwsChunkedDecoder

Receive = Callable[[], Awaitable[Mapping[str, Any]]]

# Bytes gathered before one write: big enough that a thread hop per write is negligible,
# small enough that memory per upload stays flat.
WRITE_BATCH = 2 * 1024 * 1024


# Batch buffers of finished uploads, kept for the next ones (up to 32 MiB): memory in use is
# already mapped, while a new buffer costs a page fault per page (dear in a virtual machine
# that hands freed memory back to its host) and zero-filling.
_SPARE_BUFFERS: collections.deque[memoryview] = collections.deque(maxlen=16)


class ClientDisconnected(Exception):
    """The client went away before sending the whole body."""


class RequestBodyStream:
    """The ASGI `receive` channel of one request, read only when the view asks for the body.

    Django's handler also calls the object (as `receive`) to notice a disconnect while the
    view runs; that call waits until the view has finished reading the body, so the two
    readers never race for a body message.
    """

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._body_done = asyncio.Event()
        self.consumed = False

    async def __call__(self) -> Mapping[str, Any]:
        await self._body_done.wait()
        return await self._receive()

    async def chunks(self) -> AsyncIterator[bytes]:
        if self.consumed:
            return
        self.consumed = True
        try:
            while True:
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnected()
                if message.get("body"):
                    yield message["body"]
                if not message.get("more_body", False):
                    return
        finally:
            self._body_done.set()

    async def read_all(self, limit: int) -> bytes:
        """A small body (e.g. CompleteMultipartUpload XML), refused past `limit` bytes."""
        data = bytearray()
        async for chunk in self.chunks():
            data += chunk
            if len(data) > limit:
                raise errors.EntityTooLarge(f"This request body may be at most {limit} bytes.")
        return bytes(data)


@dataclass
class BodySpec:
    """What the body must turn out to be, from the request's headers and signature."""

    length: int  # decoded payload length
    sha256: str | None = None  # signed hex SHA-256 of the payload
    content_md5: bytes | None = None  # raw digest from Content-MD5
    checksum_algorithm: str | None = None
    checksum_expected: bytes | None = None  # from a header; None when it comes in the trailer
    decoder: AwsChunkedDecoder | None = None


@dataclass
class BodyResult:
    size: int
    md5: bytes
    checksum_algorithm: str | None = None
    checksum: bytes | None = None


@dataclass
class _Hashes:
    md5: md5_lanes.Hasher = field(default_factory=md5_lanes.new)
    sha256: Any = None
    checksum: Checksum | None = None
    size: int = 0
    direct: bool = False  # write whole aligned blocks with O_DIRECT (storage/direct.py)

    def write(self, fd: int, data: memoryview, offset: int) -> None:
        """Write a batch and feed it to the hashes but MD5 (which `_Batches` hands elsewhere)."""
        direct.write(fd, data, offset, direct=self.direct)
        if self.sha256 is not None:
            self.sha256.update(data)
        if self.checksum is not None:
            self.checksum.update(data)


async def receive_to_file(stream: RequestBodyStream, spec: BodySpec, fd: int, offset: int = 0) -> BodyResult:
    """Write the body to `fd` from `offset` on, hashing it, and check it against `spec`.

    The event loop copies the body into one of two WRITE_BATCH buffers while a worker thread
    writes and hashes the other one (hashlib and the CRCs release the GIL on big buffers), so the
    loop keeps reading while the disk works, and memory per upload is the two buffers.
    """
    hashes = _Hashes(
        sha256=hashlib.sha256() if spec.sha256 else None,
        checksum=new_checksum(spec.checksum_algorithm) if spec.checksum_algorithm else None,
        direct=settings.SIMPLETUNER_S3_DIRECT_WRITES,
    )
    batches = _Batches(hashes, fd, min(spec.length, WRITE_BATCH), offset)
    try:
        async for raw in stream.chunks():
            pieces = spec.decoder.feed(raw) if spec.decoder is not None else (raw,)
            for piece in pieces:
                hashes.size += len(piece)
                if hashes.size > spec.length:
                    raise errors.IncompleteBody("The body is longer than its declared Content-Length.")
                await batches.add(piece)
        await batches.flush()
    finally:
        await batches.settle()
    if spec.decoder is not None:
        spec.decoder.finish()
    return _verify(spec, hashes)


def _buffer(size: int) -> memoryview:
    if size == WRITE_BATCH and _SPARE_BUFFERS:
        with contextlib.suppress(IndexError):  # another thread's event loop took the last one
            return _SPARE_BUFFERS.pop()
    return direct.aligned_buffer(size)


class _Batches:
    """Two reused buffers of WRITE_BATCH bytes: one filled by the event loop, one in a worker.

    Each write but the last is exactly WRITE_BATCH bytes at a multiple of WRITE_BATCH from the
    first (a part kept in place starts at a multiple of its size), from block-aligned buffers,
    so all but the end of an unaligned last batch can bypass the page cache (storage/direct.py);
    what does go through it lands in large folios, which makes a later copy_file_range of the
    parts into the object several times cheaper than after unaligned writes.
    """

    def __init__(self, hashes: _Hashes, fd: int, size: int, offset: int) -> None:
        self.hashes, self.fd, self.offset = hashes, fd, offset
        # A body smaller than a batch needs one buffer of its size (the second stays empty).
        self.filling, self.spare = _buffer(size), _buffer(size if size == WRITE_BATCH else 0)
        self.used = 0
        self.pending: asyncio.Future[Any] | None = None
        self.md5_pending: concurrent.futures.Future[None] | None = None
        self.write_task: asyncio.Future[None] | None = None

    async def add(self, piece: bytes | memoryview) -> None:
        view = memoryview(piece)
        while view:
            take = min(len(view), len(self.filling) - self.used)
            if take == 0:
                raise AssertionError("a body longer than its buffer got past the length check")
            self.filling[self.used : self.used + take] = view[:take]
            self.used += take
            view = view[take:]
            if self.used == WRITE_BATCH:
                await self._hand_over(self.filling)
                self.filling, self.spare = self.spare, self.filling
                self.used = 0

    async def flush(self) -> None:
        """Write what is left and wait until every batch is written and hashed."""
        if self.used:
            await self._hand_over(self.filling[: self.used])
        await self._wait()

    async def settle(self) -> None:
        """Let the last batch's write and MD5 finish (after an error their errors are moot), then
        keep the buffers for the next upload."""
        # Wait for both halves of the last batch themselves, not for `pending` (a gather that a
        # cancellation or the first half's exception ends while the other half still runs).
        # The caller closes the descriptor once this returns, so this waits even through further
        # cancellations (the thread's batch ends in milliseconds) and passes them on afterwards.
        self.hashes.md5.close()
        halves: list[asyncio.Future[Any]] = []
        if self.write_task is not None:
            halves.append(self.write_task)
        if self.md5_pending is not None:
            halves.append(asyncio.wrap_future(self.md5_pending))
        both = asyncio.gather(*halves, return_exceptions=True)
        cancelled = False
        while not both.done():
            try:
                await asyncio.shield(both)
            except asyncio.CancelledError:
                cancelled = True
        _SPARE_BUFFERS.extend(buffer for buffer in (self.filling, self.spare) if len(buffer) == WRITE_BATCH)
        if cancelled:
            raise asyncio.CancelledError()

    async def _wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            await pending

    async def _hand_over(self, data: memoryview) -> None:
        await self._wait()  # the other buffer is free again once its batch is done
        # MD5 (for the ETag) is the costliest hash: it goes to storage/md5.py's thread, beside
        # other uploads' parts, while a worker thread writes and computes the others (hashlib and
        # the CRCs release the GIL), so an upload can use two cores when they are free.
        self.md5_pending = self.hashes.md5.submit(data)
        # The thread cannot be stopped: a cancellation must not end the task that waits for it.
        self.write_task = asyncio.ensure_future(asyncio.to_thread(self.hashes.write, self.fd, data, self.offset))
        self.pending = asyncio.gather(asyncio.wrap_future(self.md5_pending), asyncio.shield(self.write_task))
        self.offset += len(data)


def _verify(spec: BodySpec, hashes: _Hashes) -> BodyResult:
    if hashes.size != spec.length:
        raise errors.IncompleteBody(
            f"You did not provide the number of bytes specified by the Content-Length ({hashes.size} of {spec.length})."
        )
    if spec.sha256 and not hmac.compare_digest(hashes.sha256.hexdigest(), spec.sha256):
        raise errors.XAmzContentSHA256Mismatch()
    md5 = hashes.md5.digest()
    if spec.content_md5 is not None and not hmac.compare_digest(md5, spec.content_md5):
        raise errors.BadDigest("The Content-MD5 you specified did not match what we received.")
    result = BodyResult(size=hashes.size, md5=md5)
    if hashes.checksum is not None:
        result.checksum_algorithm = spec.checksum_algorithm
        result.checksum = hashes.checksum.digest()
        expected = spec.checksum_expected
        if expected is None and spec.decoder is not None:
            expected = _trailer_checksum(spec.decoder, spec.checksum_algorithm or "")
        if expected is None or not hmac.compare_digest(result.checksum, expected):
            raise errors.BadDigest(
                f"The {(spec.checksum_algorithm or '').upper()} you specified did not match the calculated checksum."
            )
    return result


def _trailer_checksum(decoder: AwsChunkedDecoder, algorithm: str) -> bytes | None:
    from storage.checksums import decode_b64_digest

    header = f"x-amz-checksum-{algorithm}"
    value = decoder.trailers.get(header)
    if value is None:
        raise errors.InvalidRequest(f"The trailer {header} declared in x-amz-trailer was not sent.")
    return decode_b64_digest(value, algorithm, header)
