from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cloudops.apikeys import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a user. The key is printed alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="username of the key's owner")
        parser.add_argument("--name", default="cli", help="a label for the key (default: cli)")

    def handle(self, *args: Any, user: str, name: str, **options: Any) -> None:
        try:
            owner = get_user_model().objects.get_by_natural_key(user)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {user!r}. Create one with: python manage.py createsuperuser") from None
        if not name.strip() or len(name) > 100:
            raise CommandError("--name must be 1 to 100 characters")
        api_key, raw_key = api_key_create(owner=owner, name=name)
        self.stderr.write(f"Created API key {api_key.prefix} ({name!r}) for {user}. It is shown only once:")
        self.stdout.write(raw_key)
