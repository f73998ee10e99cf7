"""ASGI entry point (daphne serves `cloudops.asgi:application`)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudops.settings")

application = get_asgi_application()
