from __future__ import annotations

from django.apps import AppConfig


class CloudopsConfig(AppConfig):
    name = "cloudops"
    verbose_name = "Access"
