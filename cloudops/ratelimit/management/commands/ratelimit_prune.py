from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from cloudops.ratelimit.backends.base import BackendUnavailable
from cloudops.ratelimit.services import ratelimit_prune


class Command(BaseCommand):
    help = "Delete expired rate-limit state now (it is also pruned as the server runs)."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            removed = ratelimit_prune()
        except BackendUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Removed {removed} expired rate-limit keys.")
