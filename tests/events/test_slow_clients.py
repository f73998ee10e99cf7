"""A connection's queue is bounded: a client that falls behind is told and dropped."""

from __future__ import annotations

import asyncio
from typing import Any

from channels.layers import get_channel_layer

from providers.events import MESSAGE_TYPE, user_group
from providers.stream import Viewer, _Delivered, _live, _Subscription


def message(event_id: int, owner_id: int) -> dict[str, Any]:
    return {"type": MESSAGE_TYPE, "id": event_id, "kind": "job.progress", "owner_id": owner_id, "data": {"n": event_id}}


async def test_a_client_that_falls_behind_is_sent_dropped_and_disconnected(settings: Any) -> None:
    settings.SIMPLETUNER_EVENTS_QUEUE = 3
    settings.SIMPLETUNER_EVENTS_HEARTBEAT = 5
    subscription = _Subscription(Viewer(user_id=41, sees_all=False))
    await subscription.open()
    try:
        layer = get_channel_layer()
        for event_id in range(1, 11):  # nobody reads the stream meanwhile
            await layer.group_send(user_group(41), message(event_id, 41))
        for _ in range(200):
            if subscription.overflowed:
                break
            await asyncio.sleep(0.01)
        assert subscription.overflowed
        assert subscription.queue.qsize() == 3  # never more than the bound
        chunks = [chunk async for chunk in _live(subscription, _Delivered(0))]
        assert len(chunks) == 1 and chunks[0].startswith("event: dropped\n")
        assert "Last-Event-ID" in chunks[0]
    finally:
        await subscription.close()


async def test_a_client_that_keeps_up_gets_every_event_in_order(settings: Any) -> None:
    settings.SIMPLETUNER_EVENTS_QUEUE = 3
    settings.SIMPLETUNER_EVENTS_HEARTBEAT = 5
    subscription = _Subscription(Viewer(user_id=42, sees_all=False))
    await subscription.open()
    received: list[str] = []
    try:
        layer = get_channel_layer()
        replayed = _Delivered(0)
        replayed.add(2)  # sent from the buffer already
        live = _live(subscription, replayed)
        for event_id in range(1, 6):
            await layer.group_send(user_group(42), message(event_id, 42))
            if event_id != 2:  # 2 was already replayed from the buffer: skipped
                received.append(await anext(live))
        await live.aclose()
    finally:
        await subscription.close()
    assert [chunk.split("\n")[0] for chunk in received] == ["id: 1", "id: 3", "id: 4", "id: 5"]
    assert not subscription.overflowed
