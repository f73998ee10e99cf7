"""Django's stock ASGI handler (no streaming body for storage), for bench/asgi_bodies.py only:
it shows what Django's own request handling does with a large upload."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudops.settings")
application = get_asgi_application()
