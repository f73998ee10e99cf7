"""Log lines carry the guide's logger names (`simpletuner.cloud.<area>`): log shippers and
alert rules filter on the `logger` field, so the names are a contract like metric names."""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from cloudops.structured_logging import configure_structured_logging, get_logger
from tests.providers.helpers import QUICK

ROOT = Path(__file__).resolve().parents[2]
# Every package of the server, the compatibility package included.
PACKAGES = ("cloudops", "providers", "storage", "audit", "simpletuner")
PREFIX = "simpletuner.cloud."


def logger_names(path: Path) -> list[tuple[int, str | None]]:
    """(line, name) of each `get_logger(...)` / `logging.getLogger(...)` call in a module; the
    name is None when it is not a string literal (such as `__name__`, a module path)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if called not in ("get_logger", "getLogger") or not node.args:
            continue
        arg = node.args[0]
        name = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
        found.append((node.lineno, name))
    return found


def test_every_logger_of_the_server_is_under_simpletuner_cloud() -> None:
    wrong = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for line, name in logger_names(path):
                # structured_logging.get_logger passes its caller's name through.
                if name is None and path.name == "structured_logging.py":
                    continue
                if name is None or not name.startswith(PREFIX):
                    wrong.append(f"{path.relative_to(ROOT)}:{line}: {name or 'a name that is not a literal'}")
    assert wrong == []


def test_the_name_check_notices_a_logger_outside_the_namespace(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text('logger = get_logger("cloudops.store")\nother = logging.getLogger(__name__)\n')
    assert logger_names(module) == [(1, "cloudops.store"), (2, None)]


@pytest.mark.django_db
def test_a_job_submission_logs_the_guides_json_line(
    alice_client: APIClient, local_jobs_dir: Path, json_records: list[dict]
) -> None:
    body = json.dumps({"provider": "local", "config": QUICK})
    response = alice_client.post(
        "/api/cloud/jobs/submit", data=body, content_type="application/json", headers={"X-Request-ID": "abc123def456"}
    )
    assert response.status_code == 201, response.json()
    job_id = response.json()["job_id"]
    submitted = [r for r in json_records if r["message"] == "Job submitted"]
    assert len(submitted) == 1
    line = submitted[0]
    assert line["logger"] == "simpletuner.cloud.jobs"
    assert line["level"] == "INFO"
    assert line["correlation_id"] == "abc123def456"
    assert line["extra"] == {"job_id": job_id, "provider": "local", "hardware": "local"}
    assert line["source"] == {"file": "submit.py", "line": line["source"]["line"], "function": "job_submit"}
    # The request's access line is under the same namespace.
    access = [r for r in json_records if r["logger"] == "simpletuner.cloud.access"]
    assert [r["extra"]["route"] for r in access] == ["/api/cloud/jobs/submit"]


def test_the_configured_level_applies_to_the_servers_loggers(tmp_path: Path) -> None:
    log_file = tmp_path / "cloud.log"
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_structured_logging(level="WARNING", json_output=True, log_file=str(log_file))
        get_logger("simpletuner.cloud.ratelimit").info("hidden at WARNING")
        get_logger("simpletuner.cloud.ratelimit").warning("rate-limit backend unavailable")
        for handler in root.handlers:
            handler.flush()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved[0], saved[1]
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("simpletuner.cloud.ratelimit", "rate-limit backend unavailable")
    ]
