"""A small server-sent events reader over httpx, for tests against real server processes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Message:
    event: str = "message"
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return json.loads(self.data)


class Stream:
    """Reads one open SSE response message by message (comments are messages too, so a
    heartbeat wakes the reader and deadlines are honoured)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()
        self.seen: list[Message] = []

    def next(self) -> Message:
        message = Message()
        fields = 0
        for line in self.lines:
            if line == "":
                if fields:
                    self.seen.append(message)
                    return message
                continue
            fields += 1
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                message.comments.append(value)
            elif name == "data":
                message.data = f"{message.data}\n{value}" if message.data else value
            elif name in ("event", "id"):
                setattr(message, name, value)
        raise EOFError("the stream ended")

    def until(self, predicate: Callable[[Message], bool], timeout: float = 15) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.next()
            if predicate(message):
                return message
        raise AssertionError(f"no matching event within {timeout}s; saw {[(m.event, m.data) for m in self.seen]}")

    def events(self, kind: str | None = None) -> list[Message]:
        return [m for m in self.seen if m.id is not None and (kind is None or m.event == kind)]


@contextmanager
def open_stream(base: str, *, api_key: str | None = None, headers: dict[str, str] | None = None) -> Iterator[Stream]:
    """Open the stream and wait for its first message (sent once the subscription is live)."""
    sent = dict(headers or {})
    if api_key:
        sent["Authorization"] = f"Bearer {api_key}"
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=10)) as client,
        client.stream("GET", base + "/api/events/stream", headers=sent) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response)
        first = stream.next()
        assert "connected" in first.comments
        yield stream
