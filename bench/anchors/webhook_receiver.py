"""The anchor for webhook ingest: the minimal correct receiver on our stack.

A Django view with no middleware that verifies the Standard Webhooks signature (the
`standardwebhooks` package, as cloudops does), then in one SQLite (WAL, IMMEDIATE) transaction
inserts the replay record under a unique key and updates the job's progress. Served by uvicorn
like cloudops: `ANCHOR_DB=/tmp/a.db uvicorn bench.anchors.webhook_receiver:application`.
Its database (tables `replay` and `job`) is made by bench/webhook_ingest.py.
"""

from __future__ import annotations

import json
import os

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-anchor",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": os.environ.get("ANCHOR_DB", ":memory:"),
                "OPTIONS": {
                    "transaction_mode": "IMMEDIATE",
                    "timeout": 30,
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                },
            }
        },
    )
    django.setup()

from django.core.asgi import get_asgi_application
from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

_secrets: dict[str, Webhook] = {}


def _webhook_for(job_id: str) -> Webhook | None:
    if job_id not in _secrets:
        with connection.cursor() as cursor:
            cursor.execute("SELECT secret FROM job WHERE id = %s", [job_id])
            row = cursor.fetchone()
        if row is None:
            return None
        _secrets[job_id] = Webhook(row[0])
    return _secrets[job_id]


@csrf_exempt
def receive(request: HttpRequest) -> JsonResponse:
    body = request.body
    try:
        payload = json.loads(body)
        webhook = _webhook_for(str(payload["job_id"]))
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"detail": "bad payload"}, status=400)
    if webhook is None:
        return JsonResponse({"status": "ignored"})
    try:
        webhook.verify(body, {k.lower(): v for k, v in request.headers.items()})
    except WebhookVerificationError:
        return JsonResponse({"detail": "bad signature"}, status=401)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("INSERT INTO replay (webhook_id) VALUES (%s)", [request.headers["webhook-id"]])
            cursor.execute(
                "UPDATE job SET progress = %s WHERE id = %s", [json.dumps(payload.get("data")), payload["job_id"]]
            )
    except IntegrityError:
        return JsonResponse({"status": "duplicate"})
    return JsonResponse({"status": "received"})


urlpatterns = [path("api/webhooks/local", receive)]
application = get_asgi_application()
