"""Request bodies at the ASGI level: one policy per path, applied before Django reads a byte.

Django's ASGI handler reads a whole request body before any middleware or view runs, into a
temporary file once it passes FILE_UPLOAD_MAX_MEMORY_SIZE, whatever its size: one anonymous
POST could make the server write a gigabyte to disk before authentication or rate limiting had
a say. The server's handler (cloudops.handler) asks this module instead, and each HTTP request
gets one of three policies by its path:

- the S3 endpoint (storage.mount): the body stays unread. The view gets a
  `storage.body.RequestBodyStream` in `request.scope[BODY_SCOPE_KEY]`, authenticates first, then
  streams the body to disk under its own object-size limits (storage/body.py says why).
- webhooks (`/api/webhooks/`): at most SIMPLETUNER_WEBHOOK_MAX_BYTES + 1 bytes are read; the view
  sees the excess and answers 413 itself, audited as `webhook_rejected` / `too_large`.
- everything else: at most SIMPLETUNER_MAX_REQUEST_BYTES + 1 bytes are read; past that the
  handler answers 413 in place of the view, inside the middleware stack, so the refusal has a
  request id, an access-log line and a metrics count like any other response.

A bounded body whose Content-Length is over the bound is refused without reading a byte of it
(a client waiting on `Expect: 100-continue` then never sends it); a chunked one is cut at
bound + 1 bytes. What is read is held in memory (io.BytesIO, at most bound + 1 bytes), never in
a temporary file, whatever FILE_UPLOAD_MAX_MEMORY_SIZE says. After a refusal nothing more is
read, and the response closes the connection instead of draining what the client still sends.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestAborted
from django.http import HttpRequest, JsonResponse

from storage.body import RequestBodyStream
from storage.mount import BODY_SCOPE_KEY, is_storage_path

Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Scope = dict[str, Any]

WEBHOOK_PREFIX = "/api/webhooks/"
# Where a bounded body travels in the ASGI scope, so the handler finds it on `request.scope`.
BOUNDED_SCOPE_KEY = "cloudops.bounded_body"


@dataclass(frozen=True)
class Bound:
    """A limit on request bodies, the setting that sets it, and who answers the excess."""

    limit: int
    setting: str
    # True: the view reads limit + 1 bytes and refuses the excess itself (webhooks audit it).
    view_answers: bool = False


def bound_for(path: str) -> Bound | None:
    """The limit on this path's request bodies; None for the S3 endpoint, which streams them."""
    if is_storage_path(path):
        return None
    if path.startswith(WEBHOOK_PREFIX):
        return Bound(settings.SIMPLETUNER_WEBHOOK_MAX_BYTES, "SIMPLETUNER_WEBHOOK_MAX_BYTES", view_answers=True)
    return Bound(settings.SIMPLETUNER_MAX_REQUEST_BYTES, "SIMPLETUNER_MAX_REQUEST_BYTES")


def announced_length(scope: Scope) -> int | None:
    """The request's Content-Length (ASGI servers give header names in lower case), if any."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server's HTTP parser refuses these before we get here
    return None


class BoundedBody:
    """One request's ASGI `receive`, which Django's handler reads the body through: `read()`
    takes at most `bound.limit + 1` bytes, and none when the Content-Length announces more."""

    def __init__(self, receive: Receive, bound: Bound, announced: int | None) -> None:
        self._receive = receive
        self.bound = bound
        self.announced = announced
        self.refused = False

    async def read(self) -> io.BytesIO:
        body = io.BytesIO()
        if self.announced is not None and self.announced > self.bound.limit:
            self.refused = True
            return body
        keep = self.bound.limit + 1
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise RequestAborted()
            body.write(message.get("body", b"")[: keep - body.tell()])
            if body.tell() > self.bound.limit:
                self.refused = True
                break
            if not message.get("more_body", False):
                break
        body.seek(0)
        return body

    async def __call__(self) -> Mapping[str, Any]:
        """Django's handler listening for a disconnect while the view runs. After a refusal
        the rest of the body stays unread (reading on would mean receiving all of it), so this
        waits until the 413 is sent and the handler cancels it."""
        if self.refused:
            await asyncio.Event().wait()
        return await self._receive()


def body_policy(scope: Scope, receive: Receive) -> tuple[Scope, Receive]:
    """The scope and `receive` Django's handler should use for this request's body."""
    bound = bound_for(scope.get("path", ""))
    if bound is None:
        stream = RequestBodyStream(receive)
        return {**scope, BODY_SCOPE_KEY: stream}, stream
    bounded = BoundedBody(receive, bound, announced_length(scope))
    return {**scope, BOUNDED_SCOPE_KEY: bounded}, bounded


async def read_body(receive: Receive) -> io.BytesIO:
    """The body file Django's request reads from (see body_policy for `receive`)."""
    if isinstance(receive, BoundedBody):
        return await receive.read()
    # The S3 endpoint: an empty body file; the view reads the real body from the stream.
    return io.BytesIO()


def refused_body(request: HttpRequest) -> BoundedBody | None:
    """The request's body if it went over its bound (None under Django's own handlers)."""
    bounded = getattr(request, "scope", {}).get(BOUNDED_SCOPE_KEY)
    return bounded if bounded is not None and bounded.refused else None


def too_large_response(bound: Bound) -> JsonResponse:
    return JsonResponse(
        {"detail": f"Request body exceeds {bound.limit} bytes ({bound.setting})."},
        status=413,
    )
