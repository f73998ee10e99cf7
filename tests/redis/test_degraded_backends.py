"""The cache and channel layer on REDIS_URL (cloudops.redis_backends) against a real Redis
that hangs (SIGSTOP): each call gives up within REDIS_TIMEOUT and degrades as documented.

How long a call waits is not timed here (no timed asserts in tests): the clients carry
REDIS_TIMEOUT as their socket timeouts (tests/config/test_settings.py), and these tests check
that after one failure the process does not ask Redis again for a while."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache

from cloudops.redis_backends import PAUSE_SECONDS, RedisChannelLayer, RedisUnavailable, outage_for
from providers.models import Job
from tests.fakes.replicate import FakeReplicate
from tests.redis.server import RedisServer
from tests.webhooks.deliveries import prediction

pytestmark = pytest.mark.slow


def fresh_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_cache_read_is_a_miss_a_write_is_skipped_and_add_refuses_while_redis_hangs(
    redis_cache: RedisServer,
) -> None:
    cache.set("kept", "before")
    outage = outage_for(redis_cache.url)
    with redis_cache.hung():
        assert cache.get("kept", "missed") == "missed"
        # One wait: from now on this process skips Redis instead of waiting on it again.
        assert outage.skipping()
        cache.set("written", "during")
        assert cache.add("limiter", 1, 60) is False
    assert cache.get("written") is None  # skipped, and Redis is not asked again for a while
    assert cache.get("kept") is None


def test_the_cache_uses_redis_again_once_the_pause_after_a_failure_is_over(redis_cache: RedisServer) -> None:
    outage = outage_for(redis_cache.url)
    outage.clock = clock = Clock()
    try:
        cache.set("kept", "before")
        with redis_cache.hung():
            assert cache.get("kept") is None
        assert cache.get("kept") is None  # Redis is back, but this process does not know yet
        clock.now += PAUSE_SECONDS
        assert cache.get("kept") == "before"
        assert outage.failed_at is None
    finally:
        outage.clock = time.monotonic


@pytest.mark.django_db
def test_a_forged_replicate_delivery_is_refused_without_a_second_secret_fetch_while_redis_hangs(
    redis_cache: RedisServer,
    post_webhook: Callable[..., Any],
    replicate: FakeReplicate,
    replicate_job: Job,
) -> None:
    with redis_cache.hung():
        # The cached secret cannot be read: it is fetched, and the delivery applied.
        assert post_webhook("replicate", prediction("processing"), secret=replicate.webhook_secret).status_code == 200
        # A mismatch would re-fetch once per interval, limited through cache.add; without
        # Redis the limiter refuses, so a forgery costs at most the one fetch a miss does.
        assert post_webhook("replicate", prediction("failed"), secret=fresh_secret()).status_code == 401
    assert len(replicate.requests_to("GET", "/webhooks/default/secret")) == 2
    replicate_job.refresh_from_db()
    assert replicate_job.status == "running"


def run(call: Any) -> Any:
    return asyncio.run(call)


def test_channel_layer_calls_give_up_within_the_timeout_while_redis_hangs(redis_process: RedisServer) -> None:
    layer = RedisChannelLayer(url=redis_process.url, timeout=1.0)
    channel = run(layer.new_channel())
    try:
        with redis_process.hung():
            with pytest.raises(RedisUnavailable, match="within 1.0s"):
                run(layer.group_add("events.staff", channel))
            # Remembered: the next calls do not wait again.
            with pytest.raises(RedisUnavailable, match="not asked again"):
                run(layer.group_send("events.staff", {"type": "live.event"}))
            run(layer.group_discard("events.staff", channel))  # skipped: the membership expires
    finally:
        outage_for(redis_process.url).failed_at = None


def test_an_idle_receive_outlasts_the_servers_five_second_poll(redis_process: RedisServer) -> None:
    """Only the blocking receive may read longer than the timeout: a stream waiting for its
    next event must not fail every 5 s when nothing happens."""

    async def wait_then_send() -> dict[str, Any]:
        sender = RedisChannelLayer(url=redis_process.url, timeout=1.0)
        receiver = RedisChannelLayer(url=redis_process.url, timeout=1.0)
        channel = await receiver.new_channel()
        waiting = asyncio.create_task(receiver.receive(channel))
        await asyncio.sleep(receiver.brpop_timeout + 0.5)
        await sender.send(channel, {"type": "live.event", "id": 1})
        return await asyncio.wait_for(waiting, 5)

    assert run(wait_then_send()) == {"type": "live.event", "id": 1}
