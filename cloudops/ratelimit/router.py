"""Sends the rate-limit tables to STATE_BACKEND_URL's database when one is configured."""

from __future__ import annotations

from typing import Any

from django.conf import settings

APP_LABEL = "ratelimit"


class StateDatabaseRouter:
    def _state(self, model: Any) -> str | None:
        return settings.RATE_LIMIT_DATABASE if model._meta.app_label == APP_LABEL else None

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return self._state(model)

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return self._state(model)

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        state_db = settings.RATE_LIMIT_DATABASE
        if app_label == APP_LABEL:
            return db == state_db
        # The state database holds only the rate-limit tables.
        return None if db != state_db or state_db == "default" else False
