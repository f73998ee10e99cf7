"""No secret value ever appears in health, command output, errors or logs, whatever happens."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from cloudops import secrets
from cloudops.structured_logging import JsonFormatter, TextFormatter
from tests.secrets.conftest import TTL, FakeClock, write_secrets_file
from tests.secrets.servers import VAULT_ROOT_TOKEN, ServerProcess

pytestmark = [pytest.mark.services, pytest.mark.django_db, pytest.mark.slow]

VALUES = {
    "REPLICATE_API_TOKEN": "r8_env_LEAKCHECK_1111",
    "REPLICATE_WEBHOOK_SECRET": "whsec_file_LEAKCHECK_2222",
    "HF_TOKEN": "hf_aws_LEAKCHECK_3333",
    "SIMPLETUNER_AUDIT_KEY": "audit_vault_LEAKCHECK_4444",
}


def command_output(*args: str) -> str:
    out, err = StringIO(), StringIO()
    try:
        call_command("secrets_check", *args, stdout=out, stderr=err)
    except CommandError as exc:
        err.write(str(exc))
    return out.getvalue() + err.getvalue()


def test_no_value_reaches_health_the_command_errors_or_logs(
    monkeypatch: pytest.MonkeyPatch,
    home: Path,
    settings: Settings,
    clock: FakeClock,
    own_moto: ServerProcess,
    own_bao: ServerProcess,
    use_aws: Callable[..., str],
    use_vault: Callable[..., str],
    anon: APIClient,
    staff_client: APIClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings.SIMPLETUNER_REQUIRED_SECRETS = list(VALUES)
    monkeypatch.setenv("REPLICATE_API_TOKEN", VALUES["REPLICATE_API_TOKEN"])
    write_secrets_file(home, {"REPLICATE_WEBHOOK_SECRET": VALUES["REPLICATE_WEBHOOK_SECRET"]})
    use_aws(own_moto, {"HF_TOKEN": VALUES["HF_TOKEN"]})
    use_vault(own_bao, {"SIMPLETUNER_AUDIT_KEY": VALUES["SIMPLETUNER_AUDIT_KEY"]})

    seen: list[str] = []
    # Everything healthy: every value is found, nothing of it is shown.
    assert [secrets.get_secret(key) for key in VALUES] == list(VALUES.values())
    seen += [repr(secrets.lookup(key)) for key in VALUES]
    seen += [anon.get("/api/cloud/health").content.decode(), staff_client.get("/api/cloud/health").content.decode()]
    seen += [command_output(), command_output("--json")]

    # Then everything breaks at once: both stores die, the file turns world-readable and malformed.
    own_moto.kill()
    own_bao.kill()
    (home / "secrets.json").write_text('{"REPLICATE_WEBHOOK_SECRET": "' + VALUES["REPLICATE_WEBHOOK_SECRET"] + '",}')
    clock.advance(TTL)
    seen += [repr(secrets.lookup(key)) for key in VALUES]
    seen += [anon.get("/api/cloud/health").content.decode(), staff_client.get("/api/cloud/health").content.decode()]
    seen += [command_output(), command_output("--json")]
    (home / "secrets.json").chmod(0o644)
    seen += [json.dumps(secrets.lookup("REPLICATE_WEBHOOK_SECRET").errors), command_output()]

    assert any("unavailable" in text for text in seen), "the failures must have been reported"
    assert any(record.levelno == logging.WARNING for record in caplog.records), "the failures must have been logged"
    seen += [JsonFormatter().format(record) for record in caplog.records]
    seen += [TextFormatter().format(record) for record in caplog.records]
    everything = "\n".join(seen)
    for value in [*VALUES.values(), VAULT_ROOT_TOKEN]:
        assert value not in everything
