"""A body limit for webhook requests at the ASGI level.

Django's ASGI handler reads a whole request body (spooling it to disk) before any view runs,
whatever its size when it has no Content-Length (chunked). For /api/webhooks/ that would let
anyone make the server store gigabytes before the view can say 413. This receive() wrapper
hands Django at most `limit + 1` bytes and then ends the body early; the view sees more than
the limit and answers 413. Whatever the client still sends is read and discarded, never kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]

WEBHOOK_PREFIX = "/api/webhooks/"


class CappedBody:
    def __init__(self, receive: Receive, limit: int) -> None:
        self.receive = receive
        self.limit = limit
        self.received = 0
        self.cut = False

    async def __call__(self) -> dict[str, Any]:
        if self.cut:
            return await self._discard_rest()
        message = await self.receive()
        if message["type"] != "http.request":
            return message
        body = message.get("body", b"")
        self.received += len(body)
        if self.received > self.limit and message.get("more_body", False):
            self.cut = True
            keep = len(body) - (self.received - self.limit - 1)
            return {"type": "http.request", "body": body[: max(keep, 0)], "more_body": False}
        return message

    async def _discard_rest(self) -> dict[str, Any]:
        """Later calls (Django listening for a disconnect) skip the body's remaining chunks."""
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                return message
            if not message.get("more_body", False):
                self.cut = False  # the body is over; the next message is the real next one
                return await self.receive()


def is_webhook_path(path: str) -> bool:
    return path.startswith(WEBHOOK_PREFIX)
