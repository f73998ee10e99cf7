from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from notifications.delivery import deliveries_drain


class Command(BaseCommand):
    help = "Send the notifications that are due (once, or --loop every SIMPLETUNER_NOTIFICATIONS_INTERVAL)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="keep delivering until stopped")

    def handle(self, *args: Any, loop: bool = False, **options: Any) -> None:
        total = deliveries_drain()
        while loop:
            time.sleep(settings.SIMPLETUNER_NOTIFICATIONS_INTERVAL)
            total += deliveries_drain()
        self.stdout.write(f"{total} delivery attempts made")
