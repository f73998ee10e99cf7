"""Live events: publish job status, progress and upload events to GET /api/events/stream.

Each event is first stored (LiveEvent, the last SIMPLETUNER_EVENTS_BUFFER of them) so its id
is unique across processes and a reconnecting client can resume from any process, then sent
through the channel layer to two groups: the job owner's and the staff group. The layer is
in-memory in the embedded default and channels-redis when REDIS_URL is set, so a webhook
applied by one server process reaches streams held open by every other.

Publishing is called from sync code in any thread (request threads, the local job watcher,
the background sync) and from async code (the S3 endpoint). The in-memory layer is not
thread-safe, so sync callers hand the send to the server's event loop (bound by the first
stream opened in this process); without one, nobody in this process is listening and the
send runs on a private loop (what channels-redis needs from a management command).

When Redis is down or hung, a send gives up within REDIS_TIMEOUT (cloudops.redis_backends):
the event is logged and not delivered live, but stays in the buffer, so streams catch up on
it at their next heartbeat (providers.stream) and a reconnecting client gets it with
Last-Event-ID; the change it reports is not held up. A job's events are recorded in the
transaction of the change itself (job_event), so no crash can separate the two.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import Q

from cloudops.redis_backends import RedisUnavailable
from cloudops.structured_logging import get_logger
from providers.models import Job, LiveEvent

logger = get_logger("simpletuner.cloud.events")

STAFF_GROUP = "events.staff"
MESSAGE_TYPE = "live.event"
PRUNE_EVERY = 50
SEND_TIMEOUT = 5.0


def user_group(user_id: int) -> str:
    return f"events.user.{user_id}"


class _Loop:
    """The event loop serving streams in this process (process plumbing, not shared state)."""

    loop: asyncio.AbstractEventLoop | None = None


def bind_loop(loop: asyncio.AbstractEventLoop) -> None:
    _Loop.loop = loop


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    data: dict[str, Any]

    def sse(self) -> str:
        return f"id: {self.id}\nevent: {self.kind}\ndata: {json.dumps(self.data, separators=(',', ':'))}\n\n"


# --- Recording -------------------------------------------------------------------------------------


def event_record(*, kind: str, job_id: str, owner_id: int | None, data: dict[str, Any]) -> dict[str, Any]:
    """Store the event (bounded buffer) and return the channel-layer message for it."""
    row = LiveEvent.objects.create(kind=kind, job_id=job_id, owner_id=owner_id, data=data)
    newest_dropped = row.pk - settings.SIMPLETUNER_EVENTS_BUFFER
    if row.pk % PRUNE_EVERY == 0 and newest_dropped > 0:
        LiveEvent.objects.filter(pk__lte=newest_dropped).delete()
    return {"type": MESSAGE_TYPE, "id": row.pk, "kind": kind, "owner_id": owner_id, "data": data}


def latest_event_id() -> int:
    """The id of the newest recorded event (0 if none): where a new stream starts."""
    return LiveEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def events_since(*, last_id: int, user_id: int, staff: bool) -> tuple[list[Event], bool]:
    """Buffered events after `last_id` the user may see, and whether the buffer still holds
    everything after `last_id` (False: some were pruned, the client should reload).

    Accepted race: ids come from the database's sequence, and two processes recording events
    at the same instant may commit them out of id order; a client that disconnects in that
    instant, having seen the higher id, does not get the lower one on resume. Every event
    carries the job's full state, so the job's next event corrects the picture. (An open
    stream does get it: events_recent.)
    """
    oldest = LiveEvent.objects.order_by("id").values_list("id", flat=True).first()
    complete = oldest is None or oldest <= last_id + 1
    rows = LiveEvent.objects.filter(pk__gt=last_id).order_by("id")
    if not staff:
        rows = rows.filter(owner_id=user_id)
    found = [Event(r.pk, r.kind, r.data) for r in rows[: settings.SIMPLETUNER_EVENTS_BUFFER]]
    return found, complete


def events_recent(*, after_id: int, since: datetime, newer_than: int, user_id: int, staff: bool) -> list[Event]:
    """Buffered events the user may see with an id above `after_id` that were recorded at or
    after `since` or have an id above `newer_than`, in id order: what an open stream compares
    with what it has sent.

    Not only those above the highest id sent: ids come from the database's sequence, and a
    transaction that took a lower id can commit after a higher one was recorded and sent (two
    processes recording at once). Its live message may be lost too (a Redis restart, a process
    killed between the commit and the send), so only the rows show it.
    """
    rows = LiveEvent.objects.filter(Q(created_at__gte=since) | Q(pk__gt=newer_than), pk__gt=after_id).order_by("id")
    if not staff:
        rows = rows.filter(owner_id=user_id)
    return [Event(r.pk, r.kind, r.data) for r in rows[: settings.SIMPLETUNER_EVENTS_BUFFER]]


def events_unsent(*, before_id: int, since: datetime, user_id: int, staff: bool) -> list[Event]:
    """Events the user may see with an id up to `before_id`, recorded at or after `since`, whose
    live message the channel layer refused: a stream resuming from `before_id` sends them, as
    its client can have had them only from a catch-up of the stream it lost (so, rarely, twice)
    and may have seen a later event first (another process sent it while this one could not)."""
    rows = LiveEvent.objects.filter(unsent=True, pk__lte=before_id, created_at__gte=since).order_by("id")
    if not staff:
        rows = rows.filter(owner_id=user_id)
    return [Event(r.pk, r.kind, r.data) for r in rows[: settings.SIMPLETUNER_EVENTS_BUFFER]]


# --- Sending -----------------------------------------------------------------------------------------


async def _group_send(message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    groups = [STAFF_GROUP] + ([user_group(message["owner_id"])] if message["owner_id"] is not None else [])
    for group in groups:
        await layer.group_send(group, message)


def _not_sent(message: dict[str, Any], exc: Exception) -> None:
    """A lost live event must never fail the change it reports. Redis being away is expected
    (one line, no traceback); anything else is a bug and logged with its traceback. The row is
    marked `unsent`, so a stream resuming from a later id still gets it (events_unsent)."""
    extra = {"event_id": message["id"]}
    if isinstance(exc, RedisUnavailable):
        logger.warning("live event not sent, Redis is unavailable: %s", exc, extra=extra)
    else:
        logger.warning("could not publish a live event", exc_info=exc, extra=extra)
    try:
        LiveEvent.objects.filter(pk=message["id"]).update(unsent=True)
    except Exception:
        logger.warning("could not mark a live event unsent", exc_info=True, extra=extra)


def _send(message: dict[str, Any]) -> None:
    loop = _Loop.loop
    try:
        if loop is not None and loop.is_running():
            # Waiting keeps one publisher's events in order on the layer. The layer bounds its
            # own calls (REDIS_TIMEOUT); SEND_TIMEOUT only guards against a stalled event loop.
            future: Future[None] = asyncio.run_coroutine_threadsafe(_group_send(message), loop)
            future.result(timeout=SEND_TIMEOUT)
        else:
            async_to_sync(_group_send)(message)
    except Exception as exc:
        _not_sent(message, exc)


async def apublish(*, kind: str, job_id: str, owner_id: int | None, data: dict[str, Any]) -> None:
    """`publish` for async callers."""
    message = await sync_to_async(event_record)(kind=kind, job_id=job_id, owner_id=owner_id, data=data)
    try:
        await _group_send(message)
    except Exception as exc:
        await sync_to_async(_not_sent)(message, exc)


# --- Job events ------------------------------------------------------------------------------------


def job_event_data(job: Job, **extra: Any) -> dict[str, Any]:
    return {
        "job_id": job.pk,
        "name": job.name,
        "provider": job.provider,
        "status": job.status,
        "progress": job.progress,
        "cost_usd": str(job.cost_usd),
        "error": job.error[:500],
        "updated_at": job.updated_at.isoformat(),
        **extra,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def job_notification_data(job: Job, **extra: Any) -> dict[str, Any]:
    """The `data` of a job's outbound notification (docs/notifications.md): what a receiver
    needs without calling back, and links to the job in the API and the admin."""
    base = settings.SIMPLETUNER_PUBLIC_URL or settings.SIMPLETUNER_LOCAL_URL
    return {
        "job_id": job.pk,
        "name": job.name,
        "owner": job.owner.get_username(),
        "provider": job.provider,
        "hardware": job.hardware,
        "status": job.status,
        "cost_usd": str(job.cost_usd) if job.cost_usd is not None else None,
        "error": job.error[:500],
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "completed_at": _iso(job.completed_at),
        "links": {"api": f"{base}/api/cloud/jobs/{job.pk}", "admin": f"{base}/admin/providers/job/{job.pk}/change/"},
        **extra,
    }


def job_event(*, kind: str, job: Job, **extra: Any) -> None:
    """Record the job's state (`job` as the caller just wrote it) as an event in the current
    transaction, and send it to open streams once that commits (never for a rollback).

    The row is written with the change it reports, so a crash right after the commit cannot
    lose the event: streams catch up from these rows (events_since) at every heartbeat and on
    reconnect, whether or not the channel-layer message arrived.
    """
    message = event_record(kind=kind, job_id=job.pk, owner_id=job.owner_id, data=job_event_data(job, **extra))
    transaction.on_commit(partial(_send, message))


async def upload_event(*, bucket: str, key: str, size: int) -> None:
    """An object landed in a job's bucket (called by storage.services.object_stored)."""
    job = await Job.objects.filter(pk=bucket).only("id", "owner_id", "upload_objects", "upload_bytes").afirst()
    if job is None:
        return
    data = {
        "job_id": job.pk,
        "bucket": bucket,
        "key": key,
        "size": size,
        "upload_objects": job.upload_objects,
        "upload_bytes": job.upload_bytes,
    }
    await apublish(kind="upload.completed", job_id=job.pk, owner_id=job.owner_id, data=data)


# --- Health ------------------------------------------------------------------------------------------


def channel_layer_roundtrip(*, timeout: float) -> str:
    """Send a message to a fresh channel and read it back within `timeout` seconds (else
    TimeoutError); returns the layer's class name."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")

    async def roundtrip() -> None:
        async with asyncio.timeout(timeout):
            channel = await layer.new_channel()
            token = secrets.token_hex(8)
            await layer.send(channel, {"type": "health.ping", "token": token})
            message = await layer.receive(channel)
        if message.get("token") != token:
            raise RuntimeError("the channel layer returned a different message")

    async_to_sync(roundtrip)()
    return type(layer).__name__
