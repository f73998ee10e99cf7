"""Set Django up for a plain script that imports one of the guide's modules first."""

from __future__ import annotations

import os


def ensure_django() -> None:
    """Configure Django with `cloudops.settings` (unless DJANGO_SETTINGS_MODULE names other
    settings) and load the apps, once; a no-op inside the server, manage.py or a test run."""
    from django.apps import apps

    if apps.ready:
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudops.settings")
    import django

    django.setup()
