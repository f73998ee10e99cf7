"""Reading and changing the metrics configuration; the API, the admin and tests call these."""

from __future__ import annotations

import functools
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from cloudops import auditing
from cloudops.auditing import Actor
from cloudops.metrics.categories import TEMPLATES, normalize_categories
from cloudops.metrics.django_process import django_metrics_follow
from cloudops.metrics.models import MetricsConfig


class UnknownTemplate(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown template {name!r} (known: {', '.join(TEMPLATES)})")


def metrics_config_get() -> MetricsConfig:
    """The configuration row, created with its defaults (export off) on first use."""
    config, _ = MetricsConfig.objects.get_or_create(pk=1)
    return config


def metrics_config_update(
    *,
    prometheus_enabled: bool | None = None,
    prometheus_categories: list[str] | None = None,
    request: HttpRequest | None = None,
    actor: Actor | None = None,
    action: str = "update",
) -> MetricsConfig:
    """Apply the given fields (None = unchanged); writes and audits only real changes.

    Raises categories.UnknownCategory before anything is written.
    """
    changes: dict[str, Any] = {}
    if prometheus_enabled is not None:
        changes["prometheus_enabled"] = prometheus_enabled
    if prometheus_categories is not None:
        changes["prometheus_categories"] = normalize_categories(prometheus_categories)
    with transaction.atomic():
        config = MetricsConfig.objects.select_for_update().filter(pk=1).first() or metrics_config_get()
        before = {name: getattr(config, name) for name in changes}
        changed = sorted(name for name, value in changes.items() if before[name] != value)
        if not changed:
            return config
        who = actor or Actor.from_request(request)
        for name in changed:
            setattr(config, name, changes[name])
        config.updated_by = who.username
        config.save(update_fields=[*changed, "updated_at", "updated_by"])
        auditing.config_changed(
            request=request,
            actor=actor,
            target_type="metrics_config",
            target_id="prometheus",
            action=action,
            details={
                "changed": changed,
                "from": {name: before[name] for name in changed},
                "to": {name: changes[name] for name in changed},
            },
        )
        # This process follows a change of the `django` category at once; the others on their
        # metrics thread's next pass.
        transaction.on_commit(functools.partial(django_metrics_follow, config))
    return config


def metrics_apply_template(
    *, name: str, request: HttpRequest | None = None, actor: Actor | None = None
) -> MetricsConfig:
    """Export the template's categories. A template is a quick start, so it also turns the
    export on (so `curl -X POST .../templates/standard` alone makes the scrape answer)."""
    if name not in TEMPLATES:
        raise UnknownTemplate(name)
    categories = list(TEMPLATES[name]["categories"])  # type: ignore[call-overload]
    return metrics_config_update(
        prometheus_enabled=True,
        prometheus_categories=categories,
        request=request,
        actor=actor,
        action=f"template:{name}",
    )
