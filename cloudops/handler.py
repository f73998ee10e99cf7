"""Django's ASGI handler as the server runs it (cloudops.asgi): three changes to the stock one.

1. Request bodies follow cloudops.bodies: the S3 endpoint's stays a stream for the view,
   every other one is bounded before Django reads it, and a body over its bound is answered
   413 in place of the view (inside the middleware stack: request id, access log, metrics).
2. Long-lived streams hold no thread. Django runs each request inside asgiref's
   ThreadSensitiveContext: the request's first thread-sensitive `sync_to_async` call (every
   MiddlewareMixin middleware makes one) starts a one-thread executor that lives until the
   context ends, and the stock handler sends the response body inside it. For an event stream
   open for hours that is a parked thread per stream. A `DetachedStreamingResponse` is sent
   after the context has ended instead: middleware and view run as usual, the thread goes, and
   the body is sent from the event loop, still ending when the client disconnects.
3. A client disconnect ends `listen_for_disconnect` without an exception (its docstring says why).
4. One thread hop per request. Our middlewares run natively in async mode, so Django runs the
   stack in async mode and enters its sync thread twice for each of its own `MiddlewareMixin`
   middlewares (sessions, CSRF, auth, ...) and again for the view: 17 hops for an API request.
   Every request but the S3 endpoint's (whose views are async and stream the body) goes
   through a second chain of the same MIDDLEWARE built in sync mode (SyncChain), entered
   once: the stack, the view and its rendering in one hop. (An event stream's body is sent
   from the event loop after the chain has answered, item 2, so it holds no thread either way.)
5. No thread per request. Django gives each request a ThreadSensitiveContext, whose executor
   starts a thread for the request's first hop and a second one to join it at the end, and the
   request's database connections die with that thread: two thread starts and a database
   connect and close per request, half the cost of a webhook delivery. The SyncChain runs on a
   bounded pool of long-lived threads instead (SIMPLETUNER_REQUEST_THREADS), each closing its
   old connections before and after a request as Django's request_started/request_finished do
   under WSGI, so CONN_MAX_AGE keeps a connection per thread. Those requests get no
   ThreadSensitiveContext: Django's few thread-sensitive calls around the chain (signals,
   response.close) run on asgiref's process-wide sync thread, briefly. The S3 endpoint keeps
   the context (its async views make several short hops per request; item 7), and so does
   the liveness probe: it must answer while every request thread waits on a slow database or
   provider, or the orchestrator would restart a process that is only busy.
6. The S3 endpoint's chain hops only where its views do. Its views are async and stream the
   body, so it runs MIDDLEWARE in async mode (StorageChain), but with Django's
   MiddlewareMixin middlewares' process_request, process_response and process_view run on the
   event loop instead of a thread hop each (15 hops per request; half of an UploadPart's
   fixed CPU cost). For S3 requests those hooks only set lazy attributes and headers (the
   session, messages and user are never loaded: a storage view that touched them would hit
   Django's SynchronousOnlyOperation, loudly). Our own middlewares are native in both modes,
   so the request id, access log, metrics, rate limit and audit refusal behave as everywhere.
7. No thread started per S3 request either. Its ThreadSensitiveContext runs on a one-thread
   executor lent for the request (LentThreads, at most SIMPLETUNER_REQUEST_THREADS; past
   that a request gets a thread of its own as before) and given back after it, so its
   database connection is kept per thread under CONN_MAX_AGE and checked by Django's
   request_started/request_finished like the request threads'. Work that outlives its request
   (a Complete or a copy whose client went away) runs in a context of its own
   (storage.keepalive.start): after the request's context ends, asgiref refuses its
   thread-sensitive calls rather than run them on a thread now lent to another request.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core.handlers import base as django_base
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.db import close_old_connections
from django.http import FileResponse, HttpRequest, HttpResponseBase, StreamingHttpResponse
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string

from cloudops.bodies import Receive, body_policy, read_body, refused_body, too_large_response
from storage.mount import is_storage_path, root_mounted

Send = Any

# Answered outside the request threads (item 5), so a saturated pool never fails it.
LIVENESS_PATH = "/api/cloud/health/live"


class DetachedStreamingResponse(StreamingHttpResponse):
    """A streaming response whose body outlives its request: cloudops.handler sends it after
    the request's thread-sensitive context has ended, so an open stream holds no thread.

    Its body should not call thread-sensitive `sync_to_async`: with no request context left,
    such calls queue on asgiref's one process-wide thread (use `thread_sensitive=False` with a
    bounded executor). `request_finished` (response.close()) fires before the body is sent, so
    the body must not rely on `_resource_closers`. Under Django's own handlers it streams like
    any StreamingHttpResponse.
    """


class _Deferred:
    """The ASGI `send` handed to Django's handle(): passes messages through, except that a
    DetachedStreamingResponse is kept here to be sent once the request's context is over."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.response: DetachedStreamingResponse | None = None

    async def __call__(self, message: Mapping[str, Any]) -> None:
        await self.send(message)


class SyncChain(BaseHandler):
    """MIDDLEWARE and the views as Django runs them under WSGI, in sync mode (item 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.load_middleware(is_async=False)

    def get_response_in_pool(self, request: HttpRequest) -> HttpResponseBase:
        """get_response on a request thread (item 5): its connections are checked before the
        request and closed after it unless CONN_MAX_AGE keeps them (Django's own handling of
        request_started and request_finished, in the thread that used them)."""
        close_old_connections()
        try:
            return self.get_response(request)
        finally:
            close_old_connections()

    def _get_response(self, request: HttpRequest) -> HttpResponseBase:
        """As CloudopsASGIHandler._get_response_async: a body over its bound is the view's answer."""
        refused = refused_body(request)
        if refused is not None and not refused.bound.view_answers:
            return too_large_response(refused.bound)
        return super()._get_response(request)  # type: ignore[misc]  # private, not in the stubs


class _InlineHooks:
    """Runs a MiddlewareMixin's process_request and process_response where the request runs
    (the event loop) instead of a thread hop each (item 6)."""

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)  # type: ignore[attr-defined]
        if hasattr(self, "process_response"):
            response = self.process_response(request, response)
        return response


@cache
def _inline(middleware: type) -> type:
    """`middleware` with its hooks run inline, if it is a MiddlewareMixin (others as they are)."""
    if not issubclass(middleware, MiddlewareMixin):
        return middleware
    namespace: dict[str, Any] = {"__module__": middleware.__module__, "__qualname__": middleware.__qualname__}
    if hasattr(middleware, "process_view"):
        sync_view_hook = middleware.process_view

        async def process_view(self: Any, *args: Any) -> HttpResponseBase | None:
            return sync_view_hook(self, *args)  # type: ignore[no-any-return]

        namespace["process_view"] = process_view
    return type(middleware.__name__, (_InlineHooks, middleware), namespace)


class StorageChain(BaseHandler):
    """MIDDLEWARE in async mode for the S3 endpoint, Django's MiddlewareMixin middlewares with
    their hooks run on the event loop (item 6)."""

    def __init__(self) -> None:
        super().__init__()
        # BaseHandler.load_middleware imports each MIDDLEWARE entry by name: give it the inline
        # variants (at startup, once per handler; tests/server/test_thread_hops.py notices if
        # Django stops looking the name up there).
        # (The stubs do not show the module's import_string: hence setattr/getattr.)
        original = getattr(django_base, "import_string")  # noqa: B009
        setattr(django_base, "import_string", lambda path: _inline(import_string(path)))  # noqa: B010
        try:
            self.load_middleware(is_async=True)
        finally:
            setattr(django_base, "import_string", original)  # noqa: B010


class LentThreads:
    """One-thread executors lent to S3 requests for their ThreadSensitiveContext (item 7), kept
    for the next request instead of a thread started and joined per request. At most `size`
    exist; a request that finds none free gets a context of its own, as Django would give it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.free: collections.deque[ThreadPoolExecutor] = collections.deque()
        self.made = 0
        self._lock = threading.Lock()

    def take(self) -> ThreadPoolExecutor | None:
        with contextlib.suppress(IndexError):
            return self.free.pop()
        with self._lock:
            if self.made >= self.size:
                return None
            self.made += 1
        return ThreadPoolExecutor(1, thread_name_prefix="s3-request")

    @contextlib.asynccontextmanager
    async def context(self) -> AsyncIterator[None]:
        """A ThreadSensitiveContext on a lent thread (a new one if none is free)."""
        executor = self.take()
        if executor is None:
            async with ThreadSensitiveContext():
                yield
            return
        try:
            async with ThreadSensitiveContext(executor=executor):
                yield
        finally:
            self.free.append(executor)


@cache
def lent_threads() -> LentThreads:
    return LentThreads(settings.SIMPLETUNER_REQUEST_THREADS)


@cache
def request_threads() -> ThreadPoolExecutor:
    """The process's request threads (item 5); threads start as concurrency needs them."""
    return ThreadPoolExecutor(settings.SIMPLETUNER_REQUEST_THREADS, thread_name_prefix="request")


class CloudopsASGIHandler(ASGIHandler):
    def __init__(self, *, sync_chain: bool = True) -> None:
        super().__init__()
        self.sync_chain = SyncChain() if sync_chain else None
        self.storage_chain = StorageChain() if sync_chain else None

    def _pooled(self, path: str) -> bool:
        return self.sync_chain is not None and path != LIVENESS_PATH and not is_storage_path(path)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        # A request to an S3 host (SIMPLETUNER_S3_HOSTS) is one under the storage mount from here on.
        scope = root_mounted(scope, settings.SIMPLETUNER_S3_HOSTS)
        scope, receive = body_policy(scope, receive)
        deferred = _Deferred(send)
        if self._pooled(scope["path"]):
            await self.handle(scope, receive, deferred)
        elif self.storage_chain is not None and is_storage_path(scope["path"]):
            async with lent_threads().context():
                await self.handle(scope, receive, deferred)
        else:
            async with ThreadSensitiveContext():
                await self.handle(scope, receive, deferred)
        if deferred.response is not None:
            await self._send_detached(deferred.response, receive, send)

    async def read_body(self, receive: Receive) -> Any:
        return await read_body(receive)

    async def _get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        """The view's place in the middleware chain (BaseHandler's hook, private in Django 5.2:
        tests/server/test_request_bodies.py notices if it moves): a body over its bound is
        answered here, so every middleware sees the 413 as the view's answer."""
        refused = refused_body(request)
        if refused is not None and not refused.bound.view_answers:
            return too_large_response(refused.bound)
        return await super()._get_response_async(request)  # type: ignore[misc]  # private, not in the stubs

    async def run_get_response(self, request: HttpRequest) -> HttpResponseBase:
        if self.sync_chain is not None and self._pooled(request.path):
            chain = sync_to_async(
                self.sync_chain.get_response_in_pool, thread_sensitive=False, executor=request_threads()
            )
            response = await chain(request)
            response._handler_class = self.__class__  # type: ignore[attr-defined]  # as Django's does
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        elif self.storage_chain is not None and is_storage_path(request.path):
            response = await self.storage_chain.get_response_async(request)
            response._handler_class = self.__class__  # type: ignore[attr-defined]  # as Django's does
        else:
            response = await super().run_get_response(request)
        if refused_body(request) is not None:
            # The client may still be sending the body: close rather than read it all to reuse
            # the connection (a client waiting on 100-continue simply never sends it).
            response["Connection"] = "close"
        return response

    async def send_response(self, response: HttpResponseBase, send: Send) -> None:
        if isinstance(response, DetachedStreamingResponse) and isinstance(send, _Deferred):
            send.response = response
            return
        await super().send_response(response, send)

    async def _send_detached(self, response: DetachedStreamingResponse, receive: Receive, send: Send) -> None:
        """Send the response as Django's handle() does, until its body ends or the client goes."""
        sending = asyncio.create_task(self.send_response(response, send))
        listening = asyncio.create_task(self.listen_for_disconnect(receive))
        await asyncio.wait([sending, listening], return_when=asyncio.FIRST_COMPLETED)
        for task in (listening, sending):
            if not task.done():
                # Cancelling the body runs its cleanup (the generator's `finally`) right away.
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def listen_for_disconnect(self, receive: Receive) -> None:
        """Return on a disconnect instead of raising RequestAborted.

        `handle()` treats either ending the same way (it ignores RequestAborted), but when the
        server cancels `handle()` itself (daphne does, a while after a client goes away), the
        raised exception is left in an orphaned task and asyncio logs "Task exception was
        never retrieved" with a traceback on every disconnected event stream.
        """
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        raise AssertionError(f"Invalid ASGI message after request body: {message['type']}")
