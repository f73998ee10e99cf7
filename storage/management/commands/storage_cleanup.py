from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from storage.services import storage_cleanup


class Command(BaseCommand):
    help = (
        "Remove abandoned multipart uploads and leftover temporary upload files "
        "(untouched for SIMPLETUNER_S3_MULTIPART_TTL_SECONDS). Safe to run any time, e.g. hourly from cron."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            default=settings.SIMPLETUNER_S3_MULTIPART_TTL_SECONDS,
            help="seconds without activity (default: SIMPLETUNER_S3_MULTIPART_TTL_SECONDS)",
        )

    def handle(self, *args: Any, older_than: int, **options: Any) -> None:
        uploads, temps = storage_cleanup(older_than=older_than)
        self.stdout.write(f"Removed {uploads} abandoned multipart upload(s) and {temps} temporary file(s).")
