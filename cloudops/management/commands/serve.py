from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

APP = "cloudops.asgi:application"


def daphne_argv(host: str, port: int, cert: str | None, key: str | None) -> list[str]:
    """daphne's command line; with a certificate and key the server itself speaks TLS."""
    # -v 0: our middleware writes the access log; daphne would write a second one.
    argv = [sys.executable, "-m", "daphne", "--no-server-name", "-v", "0"]
    if cert and key:
        argv += ["-e", f"ssl:{port}:interface={host}:privateKey={key}:certKey={cert}"]
    else:
        argv += ["-b", host, "-p", str(port)]
    return [*argv, APP]


def run_uvicorn(host: str, port: int, cert: str | None, key: str | None) -> None:
    """uvicorn with our logging, no second access log, and no header-trusting of its own."""
    import uvicorn

    uvicorn.run(
        APP,
        host=host,
        port=port,
        ssl_certfile=cert,
        ssl_keyfile=key,
        # cloudops.net decides the client IP from TRUSTED_PROXIES; uvicorn must not rewrite
        # the peer address from X-Forwarded-For before we see it.
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_config=None,
        lifespan="off",
        # On SIGTERM, give in-flight uploads this long to finish, then stop anyway.
        timeout_graceful_shutdown=10,
        http="httptools",
        loop="uvloop",
    )


class Command(BaseCommand):
    help = (
        "Serve the ASGI application (uvicorn by default, SIMPLETUNER_SERVER=daphne for daphne); "
        "HOST/PORT from the environment, default 0.0.0.0:8080; HTTPS with SIMPLETUNER_SSL_CERT/KEY."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
        parser.add_argument("--server", choices=("uvicorn", "daphne"), default=settings.SIMPLETUNER_SERVER)

    def handle(self, *args: Any, host: str, port: int, server: str, **options: Any) -> None:
        cert, key = settings.SIMPLETUNER_SSL_CERT, settings.SIMPLETUNER_SSL_KEY
        scheme = "https" if cert and key else "http"
        shown = "localhost" if host in ("0.0.0.0", "::") else host
        self.stdout.write(
            f"cloudops serving on {scheme}://{shown}:{port}/  (admin: {scheme}://{shown}:{port}/admin/; server: {server})\n"
            f"Database: {settings.DATABASES['default']['NAME']}\n"
            f"S3 endpoint: {scheme}://{shown}:{port}/api/cloud/storage  (outputs in {settings.OUTPUTS_DIR})\n"
            "First admin:   .venv/bin/python manage.py createsuperuser\n"
            "First API key: .venv/bin/python manage.py create_api_key --user <admin>\n"
        )
        self.stdout.flush()
        # The server's own URL (SIMPLETUNER_LOCAL_URL's default) follows --port: in this process
        # (uvicorn runs here, settings are already loaded) and in daphne's (it re-reads them).
        os.environ["PORT"] = str(port)
        if "SIMPLETUNER_LOCAL_URL" not in os.environ:
            settings.SIMPLETUNER_LOCAL_URL = f"{scheme}://127.0.0.1:{port}"
        if server == "daphne":
            argv = daphne_argv(host, port, cert, key)
            os.execv(argv[0], argv)
        run_uvicorn(host, port, cert, key)
