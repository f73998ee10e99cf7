"""Real `manage.py serve` processes on the test database, for the metrics tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.processes import django_env
from tests.server.live import free_port, running


@contextmanager
def servers(count: int, tmp_path: Path, **extra_env: str) -> Iterator[list[str]]:
    """`count` real `manage.py serve` processes on the test database; yields their base URLs."""
    with ExitStack() as stack:
        bases = []
        for n in range(count):
            port = free_port()
            # `extra_env` may override the defaults (e.g. turn the background sync on).
            defaults = {"SIMPLETUNER_BACKGROUND_SYNC": "false", "SIMPLETUNER_METRICS_FLUSH_SECONDS": "0.2"}
            env = django_env(PORT=str(port), **{**defaults, **extra_env})
            argv = [sys.executable, "manage.py", "serve", "--host", "127.0.0.1"]
            bases.append(stack.enter_context(running(argv, env, port, tmp_path / f"server{n}.log")))
        yield bases
