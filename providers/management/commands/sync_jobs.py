from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from cloudops.backup import hold_serving_lock_for_default_database
from cloudops.structured_logging import correlation_scope
from providers.sync import jobs_sync


class Command(BaseCommand):
    help = (
        "Poll providers for active jobs whose status has not been pushed recently (one pass, for cron; "
        "--loop keeps running). Only one process syncs at a time: others exit with a note."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="run a pass every --interval seconds until stopped")
        parser.add_argument(
            "--interval", type=float, default=settings.SIMPLETUNER_SYNC_INTERVAL, help="seconds between passes"
        )

    def handle(self, *args: Any, loop: bool, interval: float, **options: Any) -> None:
        if loop:
            # A long-running writer, like a server: `restore` must see it (cloudops/backup/lock.py).
            hold_serving_lock_for_default_database()
        while True:
            with correlation_scope():
                result = jobs_sync()
            self.stdout.write(result.summary())
            if not loop:
                return
            time.sleep(interval)
