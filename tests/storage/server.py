"""A real uvicorn server running our ASGI application in a thread of the test process.

In-process, so the test database, settings overrides and the clock seen by the server are the
test's own; the HTTP, TLS and ASGI layers are the production ones (uvicorn + httptools).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from tests.server.live import free_port


@contextmanager
def serving(*, cert: Path | None = None, key: Path | None = None) -> Iterator[str]:
    # Our handler, not cloudops.asgi: importing that starts the server's background sync.
    from cloudops.handler import CloudopsASGIHandler

    application = CloudopsASGIHandler()
    port = free_port()
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=port,
        ssl_certfile=str(cert) if cert else None,
        ssl_keyfile=str(key) if key else None,
        proxy_headers=False,
        access_log=False,
        log_config=None,
        lifespan="off",
        http="httptools",
        loop="uvloop",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("the test S3 server did not start")
        time.sleep(0.02)
    try:
        yield f"{'https' if cert else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
