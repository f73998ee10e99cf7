"""The ASGI-level cap on webhook bodies: Django never receives more than limit + 1 bytes."""

from __future__ import annotations

from typing import Any

from providers.webhook_body import CappedBody, is_webhook_path


def client(chunks: list[bytes]) -> tuple[Any, list[dict[str, Any]]]:
    """An ASGI receive() playing a client that sends `chunks`, then disconnects."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    messages.append({"type": "http.disconnect"})
    sent = list(messages)

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    return receive, sent


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def test_a_long_chunked_body_is_cut_just_past_the_limit_and_the_rest_discarded() -> None:
    receive, _ = client([b"x" * 1000] * 10)
    capped = CappedBody(receive, limit=2500)
    assert len(await read_body(capped)) == 2501
    # Django then listens for the disconnect: the unread chunks are skipped, not kept.
    assert (await capped()) == {"type": "http.disconnect"}


async def test_a_body_within_the_limit_passes_untouched() -> None:
    receive, sent = client([b"a" * 100, b"b" * 100])
    capped = CappedBody(receive, limit=200)
    assert await read_body(capped) == b"a" * 100 + b"b" * 100
    assert (await capped()) == {"type": "http.disconnect"}


def test_only_webhook_paths_are_capped() -> None:
    assert is_webhook_path("/api/webhooks/replicate")
    assert not is_webhook_path("/api/cloud/storage/job-x/key")
