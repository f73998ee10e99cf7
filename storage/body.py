"""Request bodies streamed from the ASGI server to a file, verified on the way.

Django reads a whole request body into a temporary file before any view runs, and daphne
holds it all in memory before Django sees it (django/daphne#483). For the storage endpoint
storage.asgi hands the view a `RequestBodyStream` instead: the view authenticates first
(so a bad signature costs no upload, and `Expect: 100-continue` is answered only then),
then pulls the body chunk by chunk into a temporary file while hashing it. Memory per
upload stays at a few MiB whatever the object size.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from storage import errors
from storage.checksums import Checksum, new_checksum
from storage.chunked import AwsChunkedDecoder

Receive = Callable[[], Awaitable[dict[str, Any]]]

# Bytes gathered before one write: big enough that a thread hop per write is negligible,
# small enough that memory per upload stays flat.
WRITE_BATCH = 2 * 1024 * 1024


_HASH_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="s3-md5")


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

    async def __call__(self) -> dict[str, Any]:
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
    md5: Any = field(default_factory=hashlib.md5)
    sha256: Any = None
    checksum: Checksum | None = None
    size: int = 0

    def write(self, fd: int, data: bytes | bytearray) -> None:
        # MD5 (for the ETag) is the costliest hash; it runs on a second thread while this one
        # writes and computes the others (hashlib releases the GIL), so an upload can use two
        # cores when they are free.
        md5 = _HASH_POOL.submit(self.md5.update, data)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if self.sha256 is not None:
            self.sha256.update(data)
        if self.checksum is not None:
            self.checksum.update(data)
        md5.result()


async def receive_to_file(stream: RequestBodyStream, spec: BodySpec, fd: int) -> BodyResult:
    """Write the body to `fd`, hashing it, and check it against `spec`.

    Writes and hashing run in a worker thread, one batch behind the network, so the event
    loop keeps reading while the disk works; hashlib and zlib release the GIL on big buffers.
    """
    hashes = _Hashes(
        sha256=hashlib.sha256() if spec.sha256 else None,
        checksum=new_checksum(spec.checksum_algorithm) if spec.checksum_algorithm else None,
    )
    pending: asyncio.Future[None] | None = None
    batch = bytearray()
    try:
        async for raw in stream.chunks():
            pieces = spec.decoder.feed(raw) if spec.decoder is not None else (raw,)
            for piece in pieces:
                hashes.size += len(piece)
                batch += piece
            if hashes.size > spec.length:
                raise errors.IncompleteBody("The body is longer than its declared Content-Length.")
            if len(batch) >= WRITE_BATCH:
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(asyncio.to_thread(hashes.write, fd, batch))
                batch = bytearray()
        if pending is not None:
            await pending
            pending = None
        await asyncio.to_thread(hashes.write, fd, batch)
    finally:
        if pending is not None:
            await asyncio.gather(pending, return_exceptions=True)
    if spec.decoder is not None:
        spec.decoder.finish()
    return _verify(spec, hashes)


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
