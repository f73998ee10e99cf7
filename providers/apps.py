from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string


def check_provider_clients(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every entry of settings.PROVIDER_CLIENTS must import, so a typo stops start-up."""
    problems: list[checks.CheckMessage] = []
    for name, path in settings.PROVIDER_CLIENTS.items():
        try:
            cls = import_string(path)
        except ImportError as exc:
            problems.append(
                checks.Error(f"PROVIDER_CLIENTS[{name!r}] = {path!r} cannot be imported: {exc}", id="providers.E001")
            )
            continue
        if getattr(cls, "name", None) != name:
            problems.append(
                checks.Error(
                    f"PROVIDER_CLIENTS[{name!r}] names a client whose name is {cls.name!r}", id="providers.E002"
                )
            )
    return problems


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = "Providers and jobs"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from providers.config_cache import provider_config_changed
        from providers.models import ProviderConfig

        checks.register(check_provider_clients)
        post_save.connect(provider_config_changed, sender=ProviderConfig, dispatch_uid="provider_config_saved")
        post_delete.connect(provider_config_changed, sender=ProviderConfig, dispatch_uid="provider_config_deleted")
