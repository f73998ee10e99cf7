"""Fixtures of the logging tests."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from cloudops.structured_logging import JsonFormatter


@pytest.fixture
def json_records(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict]]:
    """Every record logged during the test at INFO or above, as our JSON formatter renders it
    (the lines a log shipper reads with SIMPLETUNER_LOG_FORMAT=json)."""
    caplog.set_level(logging.INFO)
    formatter = JsonFormatter()
    records: list[dict] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(json.loads(formatter.format(record)))

    handler = Collect()
    logging.getLogger().addHandler(handler)
    yield records
    logging.getLogger().removeHandler(handler)
