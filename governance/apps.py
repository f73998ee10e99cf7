from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_role_groups(*, using: str = "default", **kwargs: Any) -> None:
    # The migration creates the role groups; `flush` (which test databases use between
    # tests) empties the table and then sends post_migrate, so they are made again here.
    from django.contrib.auth.models import Group
    from django.db import router

    from governance.roles import ROLE_GROUPS

    if router.allow_migrate_model(using, Group):
        for name in ROLE_GROUPS:
            Group.objects.using(using).get_or_create(name=name)


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        post_migrate.connect(_ensure_role_groups, sender=self, dispatch_uid="governance.ensure_role_groups")
