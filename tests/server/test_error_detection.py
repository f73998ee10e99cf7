"""The suite-wide guard against 500s and tracebacks (tests/conftest.py, tests/server/live.py)
notices them: a check that could not fail would hide every server error."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from tests.conftest import ServerErrors
from tests.server.live import assert_clean_log


def record(name: str, level: int, message: str, *, exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            exc_info = sys.exc_info()
    entry = logging.LogRecord(name, level, __file__, 1, message, None, exc_info)
    entry.__dict__.update(extra)
    return entry


def test_it_notices_a_500_in_the_access_log_and_in_djangos_own_record() -> None:
    handler = ServerErrors()
    handler.emit(record("simpletuner.cloud.access", logging.INFO, "GET /x 500", status=500))
    handler.emit(record("django.request", logging.ERROR, "Internal Server Error: /x", status_code=500))
    assert len(handler.found) == 2


def test_it_notices_an_error_with_a_traceback_from_any_logger() -> None:
    handler = ServerErrors()
    handler.emit(record("uvicorn.error", logging.ERROR, "Exception in ASGI application", exc=True))
    assert handler.found == ["uvicorn.error: Exception in ASGI application (with traceback)"]


def test_designed_answers_and_handled_warnings_pass() -> None:
    handler = ServerErrors()
    handler.emit(record("simpletuner.cloud.access", logging.INFO, "GET /api/cloud/health 503", status=503))
    handler.emit(record("simpletuner.cloud.access", logging.INFO, "POST /api/auth/login 429", status=429))
    handler.emit(record("simpletuner.cloud.events", logging.WARNING, "could not publish", exc=True))
    assert handler.found == []


@pytest.mark.parametrize(
    "line",
    [
        'ERROR:    Exception in ASGI application\nTraceback (most recent call last):\n  File "x"',
        '{"logger": "simpletuner.cloud.access", "extra": {"method": "GET", "status": 500, "duration_ms": 1}}',
        "GET /x 500 [cid] method=GET status=500 duration_ms=1",
    ],
)
def test_a_server_log_with_a_500_or_a_traceback_fails(tmp_path: Path, line: str) -> None:
    log = tmp_path / "server.log"
    log.write_text("INFO: started\n" + line + "\n")
    with pytest.raises(AssertionError):
        assert_clean_log(log)


def test_a_clean_server_log_passes(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text('{"logger": "simpletuner.cloud.access", "extra": {"status": 503, "duration_ms": 1}}\n')
    assert_clean_log(log)
