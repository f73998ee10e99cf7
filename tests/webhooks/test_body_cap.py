"""The ASGI-level body policies (cloudops/bodies.py): Django never receives more than limit + 1
bytes of a bounded body, and none of one whose Content-Length is over the limit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cloudops.bodies import Bound, BoundedBody, announced_length, body_policy, bound_for
from storage.body import RequestBodyStream
from storage.mount import BODY_SCOPE_KEY


def client(chunks: list[bytes]) -> tuple[Any, list[dict[str, Any]]]:
    """An ASGI receive() playing a client that sends `chunks`, then disconnects; and what it
    has not been asked for yet."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    messages.append({"type": "http.disconnect"})

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    return receive, messages


WEBHOOK = Bound(2500, "SIMPLETUNER_WEBHOOK_MAX_BYTES", view_answers=True)


async def test_a_long_chunked_body_is_cut_just_past_the_limit_and_the_rest_left_unread() -> None:
    receive, unread = client([b"x" * 1000] * 10)
    body = BoundedBody(receive, WEBHOOK, announced=None)
    assert len((await body.read()).read()) == 2501
    assert body.refused
    assert len(unread) == 10 - 3 + 1  # seven chunks and the disconnect were never asked for
    # Django then listens for a disconnect: that waits (until the handler cancels it) instead
    # of reading the rest of the body.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(body(), timeout=0.05)
    assert len(unread) == 8


async def test_a_body_over_the_announced_limit_is_not_read_at_all() -> None:
    receive, unread = client([b"x" * 1000] * 3)
    body = BoundedBody(receive, WEBHOOK, announced=3000)
    assert (await body.read()).read() == b""
    assert body.refused and len(unread) == 4


async def test_a_body_within_the_limit_passes_untouched() -> None:
    receive, _ = client([b"a" * 1250, b"b" * 1250])
    body = BoundedBody(receive, WEBHOOK, announced=2500)
    assert (await body.read()).read() == b"a" * 1250 + b"b" * 1250
    assert not body.refused
    assert (await body()) == {"type": "http.disconnect"}


def test_each_path_gets_its_policy(settings: Any) -> None:
    settings.SIMPLETUNER_WEBHOOK_MAX_BYTES = 4096
    settings.SIMPLETUNER_MAX_REQUEST_BYTES = 8192
    assert bound_for("/api/webhooks/replicate") == Bound(4096, "SIMPLETUNER_WEBHOOK_MAX_BYTES", view_answers=True)
    assert bound_for("/api/auth/login") == Bound(8192, "SIMPLETUNER_MAX_REQUEST_BYTES")
    assert bound_for("/no/such/path") == Bound(8192, "SIMPLETUNER_MAX_REQUEST_BYTES")
    assert bound_for("/api/cloud/storage/job-x/key") is None
    assert bound_for("/api/cloud/storage") is None


def test_the_storage_endpoint_gets_its_stream_in_the_scope() -> None:
    async def receive() -> dict[str, Any]:
        raise AssertionError("nothing is read before the view asks")

    scope, wrapped = body_policy({"type": "http", "path": "/api/cloud/storage/job-x/key", "headers": []}, receive)
    assert isinstance(wrapped, RequestBodyStream) and scope[BODY_SCOPE_KEY] is wrapped


def test_the_announced_length_comes_from_the_content_length_header() -> None:
    assert announced_length({"headers": [(b"content-length", b"42")]}) == 42
    assert announced_length({"headers": [(b"transfer-encoding", b"chunked")]}) is None
