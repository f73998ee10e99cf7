"""ASGI entry point (`cloudops.asgi:application`, served by uvicorn or daphne).

The application is Django's ASGI handler with the server's changes (cloudops.handler): request
bodies follow one policy per path before Django reads them (cloudops.bodies: the S3 endpoint's
stays a stream for the view, every other one is bounded, 413 past the bound), and long-lived
event streams are sent without holding a thread.

Only the server process imports this module, so it also starts the server's background
work: the job sync thread (providers.sync; one process at a time does a pass, under a
database lease; SIMPLETUNER_BACKGROUND_SYNC=false turns it off here) and the metrics thread
(cloudops.metrics.worker: HTTP counters into the database, cached aggregates refreshed).
On SQLite it first takes the serving lock (cloudops/backup/lock.py), once, so
`manage.py restore` knows a server is running; while a restore is in progress this waits
for it, before serving. It also keeps each SQLite database's write-ahead log open
(cloudops.sqlite_wal), so closing a request's connection does not checkpoint it.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudops.settings")

get_asgi_application()  # django.setup(), exactly as Django's own entry point does it

from cloudops.handler import CloudopsASGIHandler  # noqa: E402 - needs the app registry ready

application = CloudopsASGIHandler()


from cloudops.backup import hold_serving_lock_for_default_database  # noqa: E402 - needs the app registry
from cloudops.metrics.worker import start_metrics_worker  # noqa: E402 - needs the app registry ready
from cloudops.sqlite_wal import keep_wal_open  # noqa: E402 - needs the app registry ready
from governance.approvals import start_approval_expiry  # noqa: E402 - needs the app registry ready
from notifications.delivery import start_notification_worker  # noqa: E402 - needs the app registry ready
from notifications.retention import start_delivery_retention  # noqa: E402 - needs the app registry ready
from providers.sync import start_background_sync  # noqa: E402 - needs the app registry ready

hold_serving_lock_for_default_database()
keep_wal_open()
start_background_sync()
start_approval_expiry()
start_metrics_worker()
start_notification_worker()
start_delivery_retention()
