"""How often a request enters Django's sync thread under the server's ASGI handler: once for
the middleware stack and the view (cloudops.handler, item 4), plus Django's own
request_started and close, instead of twice per MiddlewareMixin middleware."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from django.contrib.auth.models import AbstractUser

from cloudops.handler import CloudopsASGIHandler
from tests.conftest import client_for


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the functions run through sync_to_async while the fixture is active."""
    entered: list[str] = []
    original = SyncToAsync.__call__

    async def counting(self: SyncToAsync, *args: Any, **kwargs: Any) -> Any:
        entered.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)
    yield entered


def get_with_headers(
    handler: CloudopsASGIHandler, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[bytes, bytes]]:
    """A GET through the handler: the status and the response headers (names lowercased)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"localhost"), *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(handler(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], {name.lower(): value for name, value in start["headers"]}


def get(handler: CloudopsASGIHandler, path: str, headers: dict[str, str]) -> int:
    return get_with_headers(handler, path, headers)[0]


@pytest.mark.django_db(transaction=True)
def test_an_api_request_enters_the_sync_thread_once_for_stack_and_view(alice: AbstractUser, hops: list[str]) -> None:
    handler = CloudopsASGIHandler()
    key = client_for(alice).raw_key  # type: ignore[attr-defined]
    assert get(handler, "/api/users/me", {"Authorization": f"Bearer {key}"}) == 200  # warm
    hops.clear()
    assert get(handler, "/api/users/me", {"Authorization": f"Bearer {key}"}) == 200
    # request_started, the whole chain (middleware, view and rendering in one), the close.
    assert len(hops) <= 3, hops


@pytest.mark.django_db(transaction=True)
def test_requests_run_on_the_long_lived_request_threads(alice: AbstractUser) -> None:
    """No thread per request (cloudops.handler, item 5): two requests, the same few threads."""
    import threading

    handler = CloudopsASGIHandler()
    key = client_for(alice).raw_key  # type: ignore[attr-defined]
    seen: set[str] = set()

    def watch(*args: Any) -> None:
        seen.add(threading.current_thread().name)

    original = handler.sync_chain.get_response  # type: ignore[union-attr]

    def recording(request: Any) -> Any:
        watch()
        return original(request)

    handler.sync_chain.get_response = recording  # type: ignore[union-attr, method-assign]
    for _ in range(3):
        assert get(handler, "/api/users/me", {"Authorization": f"Bearer {key}"}) == 200
    assert seen and all(name.startswith("request") for name in seen), seen


def test_liveness_answers_while_every_request_thread_is_busy() -> None:
    """A pool saturated by slow requests (a database or a provider hanging) must not fail the
    liveness probe, or the orchestrator restarts a process that is only busy."""
    import threading

    from cloudops.handler import request_threads

    handler = CloudopsASGIHandler()
    release = threading.Event()
    pool = request_threads()
    busy = [pool.submit(release.wait) for _ in range(pool._max_workers)]
    answers: list[int] = []
    probe = threading.Thread(target=lambda: answers.append(get(handler, "/api/cloud/health/live", {})))
    try:
        probe.start()
        probe.join(30)  # a hang guard: behind the busy pool the probe would wait until release
        assert answers == [200], "the liveness probe waited for a request thread"
    finally:
        release.set()
        probe.join()
        for future in busy:
            future.result()


@pytest.mark.django_db(transaction=True)
def test_an_s3_request_runs_django_middleware_hooks_without_thread_hops(hops: list[str]) -> None:
    """The S3 endpoint's chain (cloudops.handler, item 6): no thread hop for a MiddlewareMixin's
    process_request, process_response or process_view; the same answer and headers as
    Django's own async chain gives."""
    handler = CloudopsASGIHandler()
    assert get_with_headers(handler, "/api/cloud/storage/")[0] == 403  # warm
    hops.clear()
    status, headers = get_with_headers(handler, "/api/cloud/storage/")
    assert status == 403
    assert not [name for name in hops if "process_" in name or "Middleware" in name], hops
    assert len(hops) <= 3, hops  # request_started, log_response (a 4xx), the close
    stock_status, stock_headers = get_with_headers(CloudopsASGIHandler(sync_chain=False), "/api/cloud/storage/")
    different = {b"x-request-id", b"x-amz-request-id"}
    assert (status, {k: v for k, v in headers.items() if k not in different}) == (
        stock_status,
        {k: v for k, v in stock_headers.items() if k not in different},
    )
    assert set(headers) == set(stock_headers)


@pytest.mark.django_db(transaction=True)
def test_s3_requests_reuse_lent_threads() -> None:
    """No thread started per S3 request (item 7): their thread-sensitive calls run on a few
    long-lived threads."""
    import threading

    from cloudops.handler import lent_threads

    handler = CloudopsASGIHandler()
    before = {thread.ident for thread in threading.enumerate()}
    for _ in range(5):
        assert get_with_headers(handler, "/api/cloud/storage/")[0] == 403
    started = {thread.name for thread in threading.enumerate() if thread.ident not in before}
    assert len([name for name in started if name.startswith("s3-request")]) <= 1, started
    assert lent_threads().free
