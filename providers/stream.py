"""GET /api/events/stream: server-sent events of the caller's jobs (staff: every job).

An async Django view, so the middleware stack (correlation id, access log, rate-limit
exclusion) and both ways of logging in (session cookie, API key) work as for any endpoint;
channels provides the channel layer the events travel on (providers.events).

Per connection: the caller's group on the layer; a queue of at most SIMPLETUNER_EVENTS_QUEUE
events between the layer and the socket (a client that falls that far behind is sent a
`dropped` event and disconnected, so a slow reader never grows server memory; it reconnects
with Last-Event-ID and resumes from the buffer); a `: heartbeat` comment every
SIMPLETUNER_EVENTS_HEARTBEAT seconds, so proxies keep the connection and clients notice a
dead one. Every SIMPLETUNER_EVENTS_REAUTH_SECONDS the stream's API key (or session) and user
are read again: revoking a key or deactivating a user ends their open streams too, and so does
a change in whether the user sees every job (`sees_all_jobs`): the stream ends with a
`reconnect` event and the client reconnects with its new view. The client disconnecting
cancels the generator (cloudops.handler).

Open streams are capped: SIMPLETUNER_EVENTS_MAX_PER_USER per user and
SIMPLETUNER_EVENTS_MAX_STREAMS for the instance, counted as slots in the rate limiter's shared
state (cloudops.ratelimit.slots), so the caps hold across server processes; past either the
answer is 429 with Retry-After. A stream's slot is a lease, refreshed every third of
SIMPLETUNER_EVENTS_SLOT_LEASE seconds and released when the stream ends; the slots of a process
killed without cleanup come free when their leases run out. (A stream whose body never starts,
its client gone between the view and the first byte, also holds its slot until then.)

An open stream holds no thread and no database connection: the response is a
DetachedStreamingResponse, sent after the request's thread-sensitive context has ended
(cloudops.handler says why), and the stream's database reads (the backlog, the re-checks) run on
a small pool of threads shared by every stream, each closing its connection when done.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from importlib import import_module
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils import timezone

from cloudops.apikeys import api_key_find
from cloudops.authentication import presented_api_key
from cloudops.handler import DetachedStreamingResponse
from cloudops.models import ApiKey
from cloudops.ratelimit.backends.base import BackendUnavailable, SlotDecision
from cloudops.ratelimit.limiter import log_outage
from cloudops.ratelimit.middleware import outage_response
from cloudops.ratelimit.slots import Slot, slot_acquire, slot_refresh, slot_release
from cloudops.structured_logging import get_logger
from providers.events import (
    STAFF_GROUP,
    Event,
    bind_loop,
    events_recent,
    events_since,
    events_unsent,
    latest_event_id,
    user_group,
)
from providers.selectors import sees_all_jobs

logger = get_logger("simpletuner.cloud.events")

T = TypeVar("T")

RETRY_MS = 3000
SLOT_POOL = "events"

# The database work of open streams (a backlog read at the start, a re-check every
# SIMPLETUNER_EVENTS_REAUTH_SECONDS): a few short queries per stream, on threads shared by every
# stream in the process, so the thread count does not grow with the streams.
_STREAM_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="event-streams")


async def _query(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn` (ORM reads) for an open stream on the shared threads, closing the thread's
    database connection after: an idle stream holds neither a thread nor a connection."""

    def run() -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    return await sync_to_async(run, thread_sensitive=False, executor=_STREAM_THREADS)()


@dataclass(frozen=True)
class Viewer:
    user_id: int
    # sees_all_jobs(user) when the stream opened (the job API's rule: staff holding
    # providers.view_job); a re-check that finds it changed ends the stream.
    sees_all: bool
    # How the stream was authorised, re-checked every SIMPLETUNER_EVENTS_REAUTH_SECONDS.
    api_key_id: int | None = None
    session_key: str | None = None

    def recheck(self) -> str | None:
        """Read who the viewer is now: None if the stream may go on as it is, else the control
        event that ends it (ORM reads: run it through `_query`)."""
        user = get_user_model().objects.filter(pk=self.user_id, is_active=True).first()
        if user is None or not self._credential_valid():
            return _control("unauthorized", "The API key was revoked, the session ended or the user was deactivated.")
        if sees_all_jobs(user) != self.sees_all:
            return _control("reconnect", "Your access to jobs changed: reconnect to see the jobs you may see now.")
        return None

    def _credential_valid(self) -> bool:
        if self.api_key_id is not None:
            return ApiKey.objects.filter(pk=self.api_key_id, revoked_at__isnull=True).exists()
        store = import_module(settings.SESSION_ENGINE).SessionStore
        return bool(self.session_key) and store().exists(self.session_key)

    @property
    def groups(self) -> list[str]:
        # Those who see every job get them through the staff group alone (no duplicates).
        return [STAFF_GROUP] if self.sees_all else [user_group(self.user_id)]

    def may_see(self, message: dict[str, Any]) -> bool:
        return self.sees_all or message.get("owner_id") == self.user_id


def _unauthorized(detail: str) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="cloudops"'
    return response


async def _viewer(request: HttpRequest) -> Viewer | JsonResponse:
    raw_key = presented_api_key(request)
    if raw_key is not None:
        api_key = await sync_to_async(api_key_find)(raw_key)
        if api_key is None:
            return _unauthorized("Invalid or revoked API key.")
        sees_all = await sync_to_async(sees_all_jobs)(api_key.owner)
        return Viewer(api_key.owner_id, sees_all, api_key_id=api_key.pk)
    user = await request.auser()
    if not user.is_authenticated:
        return _unauthorized("Authentication credentials were not provided.")
    sees_all = await sync_to_async(sees_all_jobs)(user)
    return Viewer(user.pk, sees_all, session_key=request.session.session_key)


async def _take_slot(viewer: Viewer) -> Slot | None | JsonResponse:
    """The stream's slot; None if the state backend is down and rate limiting fails open."""
    slot = Slot(SLOT_POOL, f"user:{viewer.user_id}")
    try:
        decision = await slot_acquire(
            slot,
            per_owner=settings.SIMPLETUNER_EVENTS_MAX_PER_USER,
            total=settings.SIMPLETUNER_EVENTS_MAX_STREAMS,
            lease_seconds=settings.SIMPLETUNER_EVENTS_SLOT_LEASE,
        )
    except BackendUnavailable as exc:
        log_outage(exc, fail_open=settings.RATE_LIMIT_FAIL_OPEN, where="event stream slots")
        return None if settings.RATE_LIMIT_FAIL_OPEN else outage_response()
    return slot if decision.allowed else _too_many_streams(decision)


def _too_many_streams(decision: SlotDecision) -> JsonResponse:
    if decision.full == "owner":
        cap, name = settings.SIMPLETUNER_EVENTS_MAX_PER_USER, "SIMPLETUNER_EVENTS_MAX_PER_USER"
        detail = f"You have {cap} event streams open, the most allowed per user ({name}); close one first."
    else:
        cap, name = settings.SIMPLETUNER_EVENTS_MAX_STREAMS, "SIMPLETUNER_EVENTS_MAX_STREAMS"
        detail = f"The server has {cap} event streams open, the most it allows ({name}); try again later."
    response = JsonResponse({"detail": detail}, status=429)
    response["Retry-After"] = str(decision.retry_after)
    return response


def _last_event_id(request: HttpRequest) -> int | None | JsonResponse:
    """Last-Event-ID (what browsers send on reconnect), or ?last_event_id= for the first connect."""
    raw = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id")
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        return JsonResponse({"detail": "Last-Event-ID must be a non-negative integer (an event id)."}, status=400)
    return value


async def event_stream(request: HttpRequest) -> HttpResponseBase:
    if request.method != "GET":
        return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
    viewer = await _viewer(request)
    if isinstance(viewer, JsonResponse):
        return viewer
    last_id = _last_event_id(request)
    if isinstance(last_id, JsonResponse):
        return last_id
    slot = await _take_slot(viewer)
    if isinstance(slot, JsonResponse):
        return slot
    # Subscribed before the answer starts: a layer that cannot be reached is a 503 the client
    # retries, not a stream that breaks after its 200.
    subscription = _Subscription(viewer)
    try:
        await subscription.open()
    except Exception as exc:
        if slot is not None:
            await slot_release(slot)
        return _layer_unavailable(exc)
    # A stream lasts hours: it must not keep the connection authentication opened (in this
    # request's thread, which ends before the stream starts).
    await sync_to_async(_close_database_connection)()
    bind_loop(asyncio.get_running_loop())
    response = DetachedStreamingResponse(_events(subscription, last_id, slot), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    # nginx would otherwise buffer the stream.
    response["X-Accel-Buffering"] = "no"
    return response


class _Subscription:
    """The connection's channel on the layer, pumped into a bounded queue.

    The layer is the fast path, not the record: a Redis restart forgets every group's members
    (so a stream would hear nothing more, heartbeats and all), and a hung or stopped Redis
    fails `receive`. So at every heartbeat the stream joins its groups again (idempotent; it
    also renews the membership's expiry) and restarts a pump that failed, and _live catches
    up from the event rows, which are the record.
    """

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.layer = get_channel_layer()
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=settings.SIMPLETUNER_EVENTS_QUEUE)
        self.overflowed = False
        self.channel = ""
        self.pump: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.channel = await self.layer.new_channel()
        await self._join()
        self.pump = asyncio.create_task(self._pump())

    async def _join(self) -> None:
        for group in self.viewer.groups:
            await self.layer.group_add(group, self.channel)

    async def renew(self) -> None:
        """Join the groups again and restart a pump that failed; a layer still failing is
        left for the next heartbeat (the event rows carry the stream meanwhile)."""
        try:
            await self._join()
        except Exception as exc:
            logger.info("event stream cannot reach the channel layer", extra={"error": f"{type(exc).__name__}: {exc}"})
            return
        if self.pump is not None and self.pump.done() and not self.overflowed:
            self.pump = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except Exception as exc:  # the layer failed (Redis hung or gone): renew() restarts us
                logger.info("event stream lost the channel layer", extra={"error": f"{type(exc).__name__}: {exc}"})
                return
            if not self.viewer.may_see(message):
                continue
            try:
                self.queue.put_nowait(message)
            except asyncio.QueueFull:
                self.overflowed = True
                return

    async def close(self) -> None:
        if self.pump is not None:
            self.pump.cancel()
        if self.channel:
            for group in self.viewer.groups:
                await self.layer.group_discard(group, self.channel)


def _layer_unavailable(exc: Exception) -> JsonResponse:
    logger.warning(
        "event stream refused: the channel layer is unavailable", extra={"error": f"{type(exc).__name__}: {exc}"}
    )
    response = JsonResponse(
        {"detail": "Live events are unavailable right now (the channel layer does not answer); retry shortly."},
        status=503,
    )
    response["Retry-After"] = str(RETRY_MS // 1000)
    return response


# How far back (in heartbeats) each catch-up looks for events recorded but not sent: an event
# whose id is below one already sent (committed out of id order) is found while it is younger
# than this, and every heartbeat looks.
CATCH_UP_HEARTBEATS = 4
# How far back a resuming stream looks for events the layer refused at or below its
# Last-Event-ID (at least four heartbeats): longer than a client takes to reconnect after a
# Redis outage (the layer is left alone for 5 s after a failure, and streams are refused
# meanwhile), short enough that a later reconnect does not repeat old events.
UNSENT_RESEND_SECONDS = 60.0


class _Delivered:
    """Which event ids this stream has sent: the highest, and the recent ones (a message may
    arrive from the layer after the catch-up already sent it, or the other way round).
    `floor` is where the stream started (Last-Event-ID, or the newest event when it opened):
    nothing at or below it is this stream's to send."""

    def __init__(self, high: int) -> None:
        self.floor = high
        self.high = high
        self.recent: set[int] = set()

    def add(self, event_id: int) -> bool:
        """Record `event_id`; False if it was already sent."""
        if event_id in self.recent:
            return False
        self.recent.add(event_id)
        self.high = max(self.high, event_id)
        if len(self.recent) > 2 * settings.SIMPLETUNER_EVENTS_BUFFER:
            floor = self.high - settings.SIMPLETUNER_EVENTS_BUFFER
            self.recent = {i for i in self.recent if i > floor}
        return True


async def _catch_up(viewer: Viewer, delivered: _Delivered) -> tuple[list[Event], bool]:
    """Recorded events after the highest sent that the viewer may see and has not been sent,
    and whether the buffer still held all of them."""
    backlog, complete = await _query(
        events_since, last_id=delivered.high, user_id=viewer.user_id, staff=viewer.sees_all
    )
    return [event for event in backlog if delivered.add(event.id)], complete


async def _catch_up_recent(viewer: Viewer, delivered: _Delivered) -> list[Event]:
    """What the heartbeat sends: events recorded in the last CATCH_UP_HEARTBEATS heartbeats
    (and any after the highest sent) that this stream has not sent, whatever their id order."""
    since = timezone.now() - timedelta(seconds=CATCH_UP_HEARTBEATS * settings.SIMPLETUNER_EVENTS_HEARTBEAT)
    recent = await _query(
        events_recent,
        after_id=delivered.floor,
        since=since,
        newer_than=delivered.high,
        user_id=viewer.user_id,
        staff=viewer.sees_all,
    )
    return [event for event in recent if delivered.add(event.id)]


async def _unsent_before(viewer: Viewer, delivered: _Delivered) -> list[Event]:
    """On resume: recent events at or below Last-Event-ID that were never sent live (Redis
    refused them). The client's previous stream may have got a later event through the layer
    before its catch-up found these, and then lost its connection."""
    window = max(CATCH_UP_HEARTBEATS * settings.SIMPLETUNER_EVENTS_HEARTBEAT, UNSENT_RESEND_SECONDS)
    unsent = await _query(
        events_unsent,
        before_id=delivered.floor,
        since=timezone.now() - timedelta(seconds=window),
        user_id=viewer.user_id,
        staff=viewer.sees_all,
    )
    return [event for event in unsent if delivered.add(event.id)]


async def _events(subscription: _Subscription, last_id: int | None, slot: Slot | None) -> AsyncIterator[str]:
    viewer = subscription.viewer
    try:
        # Subscribed (in event_stream) before the backlog is read, so no event falls between.
        logger.info("event stream opened", extra={"user_id": viewer.user_id, "last_event_id": last_id})
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        delivered = _Delivered(last_id if last_id is not None else await _query(latest_event_id))
        if last_id is not None:
            for event in await _unsent_before(viewer, delivered):
                yield event.sse()
            backlog, complete = await _catch_up(viewer, delivered)
            if not complete:
                yield _control("reset", "Events after Last-Event-ID were pruned; reload the jobs list.")
            for event in backlog:
                yield event.sse()
        async for chunk in _live(subscription, delivered, slot):
            yield chunk
    finally:
        await subscription.close()
        if slot is not None:
            await slot_release(slot)
        logger.info(
            "event stream closed", extra={"user_id": viewer.user_id, "dropped_as_slow": subscription.overflowed}
        )


async def _live(subscription: _Subscription, delivered: _Delivered, slot: Slot | None = None) -> AsyncIterator[str]:
    heartbeat = settings.SIMPLETUNER_EVENTS_HEARTBEAT
    lease = settings.SIMPLETUNER_EVENTS_SLOT_LEASE
    checked = refreshed = beat = time.monotonic()
    while True:
        if time.monotonic() - beat >= heartbeat:
            # Every heartbeat, busy or quiet: renew the subscription, then send what the layer
            # did not bring (a Redis restart or outage, an event committed out of id order)
            # from the event rows, which are the record. A busy stream must not skip this:
            # events flowing on the layer say nothing about one it lost.
            beat = time.monotonic()
            await subscription.renew()
            for event in await _catch_up_recent(subscription.viewer, delivered):
                yield event.sse()
            yield ": heartbeat\n\n"
        if subscription.overflowed:
            yield _control("dropped", "Too slow: events were not read in time. Reconnect with Last-Event-ID.")
            return
        if time.monotonic() - checked >= settings.SIMPLETUNER_EVENTS_REAUTH_SECONDS:
            checked = time.monotonic()
            ended = await _query(subscription.viewer.recheck)
            if ended is not None:
                yield ended
                return
        if slot is not None and time.monotonic() - refreshed >= lease / 3:
            refreshed = time.monotonic()
            await slot_refresh(slot, lease_seconds=lease)
        try:
            # Woken at the next heartbeat, and at least every third of a lease, so the lease is
            # refreshed in time.
            wait = max(0.0, min(beat + heartbeat - time.monotonic(), lease / 3))
            message = await asyncio.wait_for(subscription.queue.get(), timeout=wait)
        except TimeoutError:
            continue
        if delivered.add(message["id"]):
            yield Event(message["id"], message["kind"], message["data"]).sse()


def _close_database_connection() -> None:
    # Resolved here, in the worker thread that made this request's queries: that thread's connection.
    connection.close()


def _control(kind: str, detail: str) -> str:
    return f"event: {kind}\ndata: {json.dumps({'detail': detail})}\n\n"
