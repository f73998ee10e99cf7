"""Django's ASGI handler, with the body of storage requests left unread for the view.

Django's handler reads every request body to the end, into a temporary file, before
middleware or view run. For the S3 endpoint that would mean a second full copy of every
upload on disk, no way to refuse a bad signature before the client has sent gigabytes, and
no `Expect: 100-continue`. So requests under the storage mount keep their body unread: the
handler gives the view a `storage.body.RequestBodyStream` (in `request.scope`) to pull it
from. Everything else about those requests is plain Django: URL routing, the middleware
stack (correlation ids, access log, rate limiting) and the async view.
"""

from __future__ import annotations

import tempfile
from typing import Any

from django.core.handlers.asgi import ASGIHandler

from storage.body import RequestBodyStream
from storage.mount import BODY_SCOPE_KEY, is_storage_path


class StreamingBodyASGIHandler(ASGIHandler):
    """Django's handler, except that storage requests keep their body as a stream."""

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if is_storage_path(scope.get("path", "")):
            receive = RequestBodyStream(receive)
            scope = {**scope, BODY_SCOPE_KEY: receive}
        await super().handle(scope, receive, send)

    async def read_body(self, receive: Any) -> Any:
        if isinstance(receive, RequestBodyStream):
            # An empty body file: the view reads the real body from the stream.
            return tempfile.SpooledTemporaryFile(max_size=1, mode="w+b")
        return await super().read_body(receive)

    async def listen_for_disconnect(self, receive: Any) -> None:
        """Return on a disconnect instead of raising RequestAborted.

        `handle()` treats either ending the same way (it ignores RequestAborted), but when the
        server cancels `handle()` itself (daphne does, a while after a client goes away), the
        raised exception is left in an orphaned task and asyncio logs "Task exception was
        never retrieved" with a traceback on every disconnected event stream.
        """
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        raise AssertionError(f"Invalid ASGI message after request body: {message['type']}")
