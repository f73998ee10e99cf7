"""Objects going out: GetObject/HeadObject headers, and the bytes read from disk as the client
takes them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from django.utils.http import http_date

from storage.store import ObjectInfo

READ_CHUNK = 1024 * 1024
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


def object_headers(info: ObjectInfo, query: dict[str, str]) -> dict[str, str]:
    headers = {
        "ETag": info.etag,
        "Last-Modified": http_date(info.last_modified.timestamp()),
        "Content-Type": info.content_type,
        "Accept-Ranges": "bytes",
    }
    headers.update({f"x-amz-meta-{name}": value for name, value in info.metadata.items()})
    headers.update({header: query[param] for param, header in RESPONSE_OVERRIDES.items() if query.get(param)})
    return headers


class FileChunks:
    """An object's bytes, read from disk in a worker thread as the client takes them.

    Async iteration matters: Django buffers a sync iterator whole under ASGI.
    """

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self.fd, self.offset, self.remaining = fd, offset, length
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while self.remaining > 0:
                data = await asyncio.to_thread(os.pread, self.fd, min(READ_CHUNK, self.remaining), self.offset)
                if not data:
                    return
                self.offset += len(data)
                self.remaining -= len(data)
                yield data
        finally:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)
