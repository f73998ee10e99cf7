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
are checked again: revoking a key or deactivating a user ends their open streams too. The
client disconnecting cancels the generator (Django's ASGI handler).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from cloudops.apikeys import api_key_find
from cloudops.authentication import presented_api_key
from cloudops.models import ApiKey
from cloudops.structured_logging import get_logger
from providers.events import STAFF_GROUP, Event, bind_loop, events_since, user_group

logger = get_logger("cloudops.events")

RETRY_MS = 3000


@dataclass(frozen=True)
class Viewer:
    user_id: int
    staff: bool
    # How the stream was authorised, re-checked every SIMPLETUNER_EVENTS_REAUTH_SECONDS.
    api_key_id: int | None = None
    session_key: str | None = None

    def still_authorised(self) -> bool:
        """The key is not revoked / the session not ended, and the user is still active."""
        try:
            if self.api_key_id is not None:
                return ApiKey.objects.filter(
                    pk=self.api_key_id, revoked_at__isnull=True, owner__is_active=True
                ).exists()
            active = get_user_model().objects.filter(pk=self.user_id, is_active=True).exists()
            store = import_module(settings.SESSION_ENGINE).SessionStore
            return active and bool(self.session_key) and store().exists(self.session_key)
        finally:
            connection.close()  # the stream goes on; it must not keep the connection

    @property
    def groups(self) -> list[str]:
        # Staff get every job's events through the staff group alone (no duplicates).
        return [STAFF_GROUP] if self.staff else [user_group(self.user_id)]

    def may_see(self, message: dict[str, Any]) -> bool:
        return self.staff or message.get("owner_id") == self.user_id


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
        return Viewer(api_key.owner_id, api_key.owner.is_staff, api_key_id=api_key.pk)
    user = await request.auser()
    if not user.is_authenticated:
        return _unauthorized("Authentication credentials were not provided.")
    return Viewer(user.pk, user.is_staff, session_key=request.session.session_key)


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


async def event_stream(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
    viewer = await _viewer(request)
    if isinstance(viewer, JsonResponse):
        return viewer
    last_id = _last_event_id(request)
    if isinstance(last_id, JsonResponse):
        return last_id
    bind_loop(asyncio.get_running_loop())
    response = StreamingHttpResponse(_events(viewer, last_id), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    # nginx would otherwise buffer the stream.
    response["X-Accel-Buffering"] = "no"
    return response


class _Subscription:
    """The connection's channel on the layer, pumped into a bounded queue."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.layer = get_channel_layer()
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=settings.SIMPLETUNER_EVENTS_QUEUE)
        self.overflowed = False
        self.channel = ""
        self.pump: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.channel = await self.layer.new_channel()
        for group in self.viewer.groups:
            await self.layer.group_add(group, self.channel)
        self.pump = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        while True:
            message = await self.layer.receive(self.channel)
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
        for group in self.viewer.groups:
            await self.layer.group_discard(group, self.channel)


async def _events(viewer: Viewer, last_id: int | None) -> AsyncIterator[str]:
    subscription = _Subscription(viewer)
    # Subscribed before the backlog is read, so no event falls between the two.
    await subscription.open()
    logger.info("event stream opened", extra={"user_id": viewer.user_id, "last_event_id": last_id})
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        replayed: set[int] = set()
        if last_id is not None:
            backlog, complete = await sync_to_async(events_since)(
                last_id=last_id, user_id=viewer.user_id, staff=viewer.staff
            )
            if not complete:
                yield _control("reset", "Events after Last-Event-ID were pruned; reload the jobs list.")
            for event in backlog:
                replayed.add(event.id)
                yield event.sse()
        # A stream lasts hours: it must not hold a database connection (from authentication or
        # the backlog) all that time, or open streams would exhaust the server's connections.
        await sync_to_async(_close_database_connection)()
        async for chunk in _live(subscription, replayed):
            yield chunk
    finally:
        await subscription.close()
        logger.info(
            "event stream closed", extra={"user_id": viewer.user_id, "dropped_as_slow": subscription.overflowed}
        )


async def _live(subscription: _Subscription, replayed: set[int]) -> AsyncIterator[str]:
    heartbeat = settings.SIMPLETUNER_EVENTS_HEARTBEAT
    checked = time.monotonic()
    while True:
        if subscription.overflowed:
            yield _control("dropped", "Too slow: events were not read in time. Reconnect with Last-Event-ID.")
            return
        if time.monotonic() - checked >= settings.SIMPLETUNER_EVENTS_REAUTH_SECONDS:
            checked = time.monotonic()
            if not await sync_to_async(subscription.viewer.still_authorised)():
                yield _control(
                    "unauthorized", "The API key was revoked, the session ended or the user was deactivated."
                )
                return
        try:
            message = await asyncio.wait_for(subscription.queue.get(), timeout=heartbeat)
        except TimeoutError:
            yield ": heartbeat\n\n"
            continue
        if message["id"] in replayed:
            continue
        yield Event(message["id"], message["kind"], message["data"]).sse()


def _close_database_connection() -> None:
    # Resolved here, in the worker thread that made this request's queries: that thread's connection.
    connection.close()


def _control(kind: str, detail: str) -> str:
    return f"event: {kind}\ndata: {json.dumps({'detail': detail})}\n\n"
