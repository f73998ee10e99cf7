from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from notifications.delivery import deliveries_drain
from notifications.retention import deliveries_prune_all


class Command(BaseCommand):
    help = (
        "Send the notifications that are due (once, or --loop every SIMPLETUNER_NOTIFICATIONS_INTERVAL), "
        "and delete the deliveries past SIMPLETUNER_NOTIFICATIONS_RETENTION_DAYS (once, or --loop every "
        "SIMPLETUNER_SYNC_INTERVAL): what the server's loops do where SIMPLETUNER_BACKGROUND_SYNC is off."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="keep delivering until stopped")

    def handle(self, *args: Any, loop: bool = False, **options: Any) -> None:
        pruned = deliveries_prune_all()
        pruned_at = time.monotonic()
        total = deliveries_drain()
        while loop:
            time.sleep(settings.SIMPLETUNER_NOTIFICATIONS_INTERVAL)
            total += deliveries_drain()
            if time.monotonic() - pruned_at >= settings.SIMPLETUNER_SYNC_INTERVAL:
                pruned += deliveries_prune_all()
                pruned_at = time.monotonic()
        self.stdout.write(f"{total} delivery attempts made; {pruned} finished deliveries past retention deleted")
