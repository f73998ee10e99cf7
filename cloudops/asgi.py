"""ASGI entry point (`cloudops.asgi:application`, served by uvicorn or daphne).

The application is Django's ASGI handler with two changes: requests to the S3 endpoint keep
their body as a stream for the view (storage.asgi explains why), and webhook bodies are
capped before Django reads them (providers.webhook_body explains why).

Only the server process imports this module, so it also starts the server's background
work: the job sync thread (providers.sync; one process at a time does a pass, under a
database lease; SIMPLETUNER_BACKGROUND_SYNC=false turns it off here) and the metrics thread
(cloudops.metrics.worker: HTTP counters into the database, cached aggregates refreshed).
On SQLite it first takes the serving lock (providers/store/lock.py), once, so
`manage.py restore` knows a server is running; while a restore is in progress this waits
for it, before serving.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.asgi import get_asgi_application

from providers.webhook_body import CappedBody, is_webhook_path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudops.settings")

get_asgi_application()  # django.setup(), exactly as Django's own entry point does it

from storage.asgi import StreamingBodyASGIHandler  # noqa: E402 - needs the app registry ready

django_application = StreamingBodyASGIHandler()


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Django, with webhook bodies capped before Django reads them (providers/webhook_body.py)."""
    if scope["type"] == "http" and is_webhook_path(scope.get("path", "")):
        receive = CappedBody(receive, settings.SIMPLETUNER_WEBHOOK_MAX_BYTES)
    await django_application(scope, receive, send)


from cloudops.metrics.worker import start_metrics_worker  # noqa: E402 - needs the app registry ready
from providers.store import hold_serving_lock_for_default_database  # noqa: E402 - needs the app registry
from providers.sync import start_background_sync  # noqa: E402 - needs the app registry ready

hold_serving_lock_for_default_database()
start_background_sync()
start_metrics_worker()
