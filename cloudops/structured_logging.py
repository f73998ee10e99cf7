"""Structured logging: JSON lines with a per-request correlation id and context fields.

The correlation id and the `LogContext` fields live in contextvars, so concurrent async
requests (and the threads asgiref runs sync code in, which copy the context) never see
each other's values. This module must not import Django: settings.py uses it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.config
import re
import traceback
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
# An immutable empty mapping as default: contexts are replaced, never mutated in place.
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "log_context", default=MappingProxyType({})
)

# Attributes every LogRecord has; anything else on a record was added by the caller.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def clean_correlation_id(value: str | None) -> str | None:
    """Return `value` if it is safe to echo and log (short, no spaces or control chars)."""
    if value and _VALID_ID.match(value):
        return value
    return None


def get_correlation_id() -> str | None:
    return _correlation_id.get()


def set_correlation_id(value: str | None) -> contextvars.Token[str | None]:
    return _correlation_id.set(value)


def reset_correlation_id(token: contextvars.Token[str | None]) -> None:
    _correlation_id.reset(token)


def get_log_context() -> dict[str, Any]:
    return dict(_context.get())


class LogContext:
    """Add fields to every record logged inside the block (nested blocks merge)."""

    def __init__(self, **fields: Any) -> None:
        self._fields = fields
        self._token: contextvars.Token[Mapping[str, Any]] | None = None

    def __enter__(self) -> LogContext:
        self._token = _context.set({**_context.get(), **self._fields})
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._token is not None
        _context.reset(self._token)
        self._token = None


@contextmanager
def correlation_scope(value: str | None = None) -> Iterator[str]:
    """Run a block (a request, a background pass) under one correlation id."""
    cid = clean_correlation_id(value) or new_correlation_id()
    token = set_correlation_id(cid)
    try:
        yield cid
    finally:
        reset_correlation_id(token)


def _record_extra(record: logging.LogRecord) -> dict[str, Any]:
    extra = dict(_context.get())
    extra.update({k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS and not k.startswith("_")})
    return extra


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, ms), level, logger, message, correlation_id,
    source {file, line, function}, extra {the caller's fields}, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": get_correlation_id(),
            "source": {"file": record.filename, "line": record.lineno, "function": record.funcName},
            "extra": _record_extra(record),
        }
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, with the correlation id and context fields."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(correlation_id_)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.correlation_id_ = get_correlation_id() or "-"
        line = super().format(record)
        extra = _record_extra(record)
        if extra:
            line += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        return line


class ClientErrorRecord(logging.Filter):
    """For loggers that report a client's mistake as an ERROR with a traceback (Django's
    DisallowedHost: a scanner or a probe sending another Host): one warning line instead.
    The answer (400) is in the access log already."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        return True


def logging_config(level: str = "INFO", json_output: bool = True, log_file: str | None = None) -> dict[str, Any]:
    """The dictConfig used by settings.py and configure_structured_logging()."""
    formatter = "json" if json_output else "text"
    handlers: dict[str, dict[str, Any]] = {
        "console": {"class": "logging.StreamHandler", "formatter": formatter},
    }
    if log_file:
        handlers["file"] = {
            "class": "logging.handlers.WatchedFileHandler",
            "filename": log_file,
            "formatter": formatter,
            "encoding": "utf-8",
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": JsonFormatter},
            "text": {"()": TextFormatter},
        },
        "filters": {"client_error": {"()": ClientErrorRecord}},
        "handlers": handlers,
        # The level and handlers sit on the root logger, so they apply alike to the server's own
        # loggers (all under `simpletuner.cloud.<area>`: jobs, webhooks, storage, access, ...,
        # the names the operations guide and log-shipper filters use) and to a script's
        # get_logger("mymodule"). No level on `simpletuner` itself: one there would override a
        # lower root level (pytest's caplog.set_level(DEBUG), a debugging session) for our code only.
        "root": {"level": level.upper(), "handlers": list(handlers)},
        "loggers": {
            # Django logs every 4xx/5xx itself; our access log already has one line per request.
            "django.request": {"level": "ERROR"},
            "django.security.DisallowedHost": {"filters": ["client_error"]},
            "django.server": {"level": "WARNING"},
            "daphne": {"level": "WARNING"},
            # At DEBUG botocore logs request and response bodies, and a GetSecretValue
            # response body is the secret itself: never below INFO, whatever the root level.
            "botocore": {"level": "INFO" if level.upper() == "DEBUG" else level.upper()},
        },
    }


def configure_structured_logging(level: str = "INFO", json_output: bool = True, log_file: str | None = None) -> None:
    """Configure the root logger (for scripts and workers outside Django's settings)."""
    logging.config.dictConfig(logging_config(level=level, json_output=json_output, log_file=log_file))


class SafeExtraLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger whose `extra` keys can never collide with LogRecord's own attributes.

    logging raises KeyError for `extra={"thread": ...}` (or name, process, message, ...), so a
    handler that logs such a field raises instead of logging, and a background loop's error
    handler once killed its thread that way. Colliding keys are kept with a `_` suffix.
    """

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = kwargs.get("extra")
        if extra and not _RECORD_ATTRS.isdisjoint(extra):
            kwargs["extra"] = {(f"{k}_" if k in _RECORD_ATTRS else k): v for k, v in extra.items()}
        return msg, kwargs


def get_logger(name: str) -> SafeExtraLogger:
    return SafeExtraLogger(logging.getLogger(name), {})
