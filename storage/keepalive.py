"""Answering an operation that may outlast a client's read timeout, as S3 does.

CompleteMultipartUpload, CopyObject and UploadPartCopy may take minutes (gigabytes to
assemble, copy or hash) while botocore waits 60 s for a byte. S3 answers them `200` at once
with the XML declaration, sends whitespace while it works, then the result or an `<Error>`
document; botocore turns such a 200-with-Error into a retry. `kept_alive` is that body.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.db import connections
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse

from cloudops.structured_logging import get_logger
from storage import errors, xml

T = TypeVar("T")

KEEPALIVE_SECONDS = 10.0

logger = get_logger("simpletuner.cloud.storage")


async def kept_alive(
    request: HttpRequest, task: asyncio.Future[T], render: Callable[[T], bytes]
) -> AsyncIterator[bytes]:
    """The declaration at once, a space every KEEPALIVE_SECONDS while `task` runs, then
    `render(result)` or an `<Error>` document."""
    yield xml.DECLARATION
    while not task.done():
        await asyncio.wait({task}, timeout=KEEPALIVE_SECONDS)
        if not task.done():
            yield b" "
    try:
        body = render(task.result())
    except errors.S3Error as error:
        body = xml.error_document(error, resource=request.path, request_id=xml.request_id(request))
    except Exception:
        body = xml.error_document(errors.InternalError(), resource=request.path, request_id=xml.request_id(request))
    yield body.removeprefix(xml.DECLARATION)


def start(work: Awaitable[T]) -> asyncio.Future[T]:
    """Run `work` to its end whatever the client does, in a task of its own.

    The task may outlive its request (the client went away) and with it the request's
    thread-sensitive context, whose lent thread (cloudops.handler) then serves other requests:
    so the task's own thread-sensitive calls (audit, job progress) go to a thread of its own,
    whose database connections are closed when the task ends.
    """

    async def detached() -> T:
        executor = ThreadPoolExecutor(1, thread_name_prefix="s3-detached")
        try:
            async with ThreadSensitiveContext(executor=executor):
                try:
                    return await work
                finally:
                    await sync_to_async(connections.close_all)()
        finally:
            executor.shutdown(wait=False)

    task = asyncio.ensure_future(detached())
    task.add_done_callback(log_unexpected)
    return task


def log_unexpected(task: asyncio.Future[Any]) -> None:
    """Log a failure that is not an S3 error (a bug) of a task nobody else may read."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None and not isinstance(error, errors.S3Error):
        logger.error("a storage operation failed", exc_info=error)


# A copy that finishes within this answers with a plain status (a refusal as a 4xx); a longer
# one answers 200 at once and keeps the connection alive.
FIRST_WAIT_SECONDS = 2.0


async def answer(request: HttpRequest, work: Awaitable[T], render: Callable[[T], bytes]) -> HttpResponseBase:
    """Run `work` to its end whatever the client does (started here, not in the response);
    answer with `render(result)`, kept alive if it takes more than FIRST_WAIT_SECONDS."""
    task = start(work)
    await asyncio.wait({task}, timeout=FIRST_WAIT_SECONDS)
    if task.done():
        return HttpResponse(render(task.result()), content_type="application/xml")
    return StreamingHttpResponse(kept_alive(request, task, render), content_type="application/xml")
