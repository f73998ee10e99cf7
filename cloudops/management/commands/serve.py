from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


def daphne_argv(host: str, port: int, cert: str | None, key: str | None) -> list[str]:
    """daphne's command line; with a certificate and key the server itself speaks TLS."""
    # -v 0: our middleware writes the access log; daphne would write a second one.
    argv = [sys.executable, "-m", "daphne", "--no-server-name", "-v", "0"]
    if cert and key:
        argv += ["-e", f"ssl:{port}:interface={host}:privateKey={key}:certKey={cert}"]
    else:
        argv += ["-b", host, "-p", str(port)]
    return [*argv, "cloudops.asgi:application"]


class Command(BaseCommand):
    help = "Serve the ASGI application with daphne (HOST/PORT from the environment, default 0.0.0.0:8080)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        cert = os.environ.get("SIMPLETUNER_SSL_CERT") or None
        key = os.environ.get("SIMPLETUNER_SSL_KEY") or None
        scheme = "https" if cert and key else "http"
        shown = "localhost" if host in ("0.0.0.0", "::") else host
        self.stdout.write(
            f"cloudops serving on {scheme}://{shown}:{port}/  (admin: {scheme}://{shown}:{port}/admin/)\n"
            f"Database: {settings.DATABASES['default']['NAME']}\n"
            "First admin:   .venv/bin/python manage.py createsuperuser\n"
            "First API key: .venv/bin/python manage.py create_api_key --user <admin>\n"
        )
        self.stdout.flush()
        argv = daphne_argv(host, port, cert, key)
        # The server's own URL (SIMPLETUNER_LOCAL_URL's default) follows --port.
        os.environ["PORT"] = str(port)
        os.execv(argv[0], argv)
