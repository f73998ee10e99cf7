"""ASGI entry point (`cloudops.asgi:application`, served by uvicorn or daphne).

Django's ASGI handler reads every request body to the end, into a temporary file, before
middleware or view run. For the S3 endpoint that would mean a second full copy of every
upload on disk, no way to refuse a bad signature before the client has sent gigabytes, and
no `Expect: 100-continue`. So requests under the storage mount keep their body unread: the
handler gives the view a `storage.body.RequestBodyStream` (in `request.scope`) to pull it
from. Everything else about those requests is plain Django: URL routing, the middleware
stack (correlation ids, access log, rate limiting) and the async view.

Only the server process imports this module, so it also starts the server's background
work: the job sync thread (providers.sync; one process at a time does a pass, under a
database lease; SIMPLETUNER_BACKGROUND_SYNC=false turns it off here).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudops.settings")

STORAGE_MOUNT = "/api/cloud/storage"
BODY_SCOPE_KEY = "cloudops.body"


def is_storage_path(path: str) -> bool:
    return path == STORAGE_MOUNT or path.startswith(STORAGE_MOUNT + "/")


class StreamingBodyASGIHandler(ASGIHandler):
    """Django's handler, except that storage requests keep their body as a stream."""

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if is_storage_path(scope.get("path", "")):
            from storage.body import RequestBodyStream

            receive = RequestBodyStream(receive)
            scope = {**scope, BODY_SCOPE_KEY: receive}
        await super().handle(scope, receive, send)

    async def read_body(self, receive: Any) -> Any:
        from storage.body import RequestBodyStream

        if isinstance(receive, RequestBodyStream):
            # An empty body file: the view reads the real body from the stream.
            return tempfile.SpooledTemporaryFile(max_size=1, mode="w+b")
        return await super().read_body(receive)


def _application() -> StreamingBodyASGIHandler:
    get_asgi_application()  # django.setup(), exactly as Django's own entry point does it
    return StreamingBodyASGIHandler()


application = _application()

from providers.sync import start_background_sync  # noqa: E402 - needs the app registry ready

start_background_sync()
