"""The role groups (governance.roles). Idempotent: groups an operator already made under
these names are kept, with the permissions they hold."""

from __future__ import annotations

from typing import Any

from django.db import migrations

ROLE_GROUPS = ("viewer", "researcher", "lead", "admin")


def create_groups(apps: Any, schema_editor: Any) -> None:
    group = apps.get_model("auth", "Group")
    for name in ROLE_GROUPS:
        group.objects.using(schema_editor.connection.alias).get_or_create(name=name)


def remove_groups(apps: Any, schema_editor: Any) -> None:
    group = apps.get_model("auth", "Group")
    group.objects.using(schema_editor.connection.alias).filter(name__in=ROLE_GROUPS, user__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_groups, remove_groups)]
