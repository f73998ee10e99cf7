"""The guide's logging API: cloudops.structured_logging's (it needs no Django)."""

from __future__ import annotations

from cloudops.structured_logging import LogContext, configure_structured_logging, get_logger

__all__ = ["LogContext", "configure_structured_logging", "get_logger"]
