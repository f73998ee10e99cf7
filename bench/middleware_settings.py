"""cloudops.settings without the middleware named by BENCH_WITHOUT_MIDDLEWARE (comma-separated
dotted paths; bench/middleware.py)."""

import os

from cloudops.settings import *  # noqa: F403

_without = [name for name in os.environ.get("BENCH_WITHOUT_MIDDLEWARE", "").split(",") if name]
if _without:
    if missing := [name for name in _without if name not in MIDDLEWARE]:  # noqa: F405
        raise SystemExit(f"BENCH_WITHOUT_MIDDLEWARE: not in MIDDLEWARE: {missing}")
    MIDDLEWARE = [name for name in MIDDLEWARE if name not in _without]  # noqa: F405
    # The admin's checks require its middleware; the bench's requests never reach the admin.
    SILENCED_SYSTEM_CHECKS = [*globals().get("SILENCED_SYSTEM_CHECKS", []), "admin.E408", "admin.E409", "admin.E410"]
