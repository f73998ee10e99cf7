from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from cloudops.structured_logging import (
    JsonFormatter,
    LogContext,
    TextFormatter,
    configure_structured_logging,
    correlation_scope,
    get_logger,
    logging_config,
)


def render(formatter: logging.Formatter, logger_name: str = "simpletuner.cloud.jobs", **extra: object) -> str:
    record = logging.getLogger(logger_name).makeRecord(
        logger_name, logging.INFO, "/src/jobs.py", 350, "Job submitted", (), None, func="submit_job", extra=extra
    )
    return formatter.format(record)


def test_json_lines_have_the_spec_shape() -> None:
    with correlation_scope("abc123def456"), LogContext(job_id="xyz789", provider="local"):
        entry = json.loads(render(JsonFormatter()))
    assert set(entry) == {"timestamp", "level", "logger", "message", "correlation_id", "source", "extra"}
    assert entry["level"] == "INFO"
    assert entry["logger"] == "simpletuner.cloud.jobs"
    assert entry["message"] == "Job submitted"
    assert entry["correlation_id"] == "abc123def456"
    assert entry["source"] == {"file": "jobs.py", "line": 350, "function": "submit_job"}
    assert entry["extra"] == {"job_id": "xyz789", "provider": "local"}
    # UTC with milliseconds: 2024-01-15T10:30:00.000Z
    assert len(entry["timestamp"]) == 24 and entry["timestamp"].endswith("Z")


def test_extra_holds_only_caller_fields() -> None:
    entry = json.loads(render(JsonFormatter(), attempt=2))
    assert entry["extra"] == {"attempt": 2}
    assert entry["correlation_id"] is None


def test_exceptions_are_rendered() -> None:
    try:
        raise ValueError("bad value")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, "f.py", 1, "failed", (), __import__("sys").exc_info()
        )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["exception"].startswith("Traceback")
    assert "ValueError: bad value" in entry["exception"]


def test_log_context_nests_and_unwinds() -> None:
    with LogContext(job_id="a"):
        with LogContext(provider="p"):
            assert json.loads(render(JsonFormatter()))["extra"] == {"job_id": "a", "provider": "p"}
        assert json.loads(render(JsonFormatter()))["extra"] == {"job_id": "a"}
    assert json.loads(render(JsonFormatter()))["extra"] == {}


def test_text_format_is_readable() -> None:
    with correlation_scope("cid-1"), LogContext(job_id="j1"):
        line = render(TextFormatter())
    assert "INFO" in line and "[cid-1]" in line and "Job submitted" in line and "job_id=j1" in line


def test_configure_structured_logging_writes_json_to_a_file(tmp_path: Path) -> None:
    log_file = tmp_path / "cloud.log"
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_structured_logging(level="INFO", json_output=True, log_file=str(log_file))
        with LogContext(job_id="abc123"):
            get_logger("mymodule").info("Processing job")
        get_logger("mymodule").debug("hidden at INFO")
        for handler in root.handlers:
            handler.flush()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved[0], saved[1]
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [line["message"] for line in lines] == ["Processing job"]
    assert lines[0]["extra"] == {"job_id": "abc123"}


@pytest.mark.parametrize(("json_output", "formatter"), [(True, "json"), (False, "text")])
def test_logging_config_selects_the_format(json_output: bool, formatter: str) -> None:
    config = logging_config(level="debug", json_output=json_output)
    assert config["handlers"]["console"]["formatter"] == formatter
    assert config["root"]["level"] == "DEBUG"
    assert "file" not in config["handlers"]


def test_a_refused_host_is_one_warning_line_not_an_error_with_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    from django.test import Client

    with caplog.at_level(logging.INFO):
        response = Client().get("/api/cloud/health/live", HTTP_HOST="scanner.example")
    assert response.status_code == 400
    refused = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert refused and all(r.levelno == logging.WARNING and r.exc_info is None for r in refused)
