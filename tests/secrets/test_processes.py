"""Several server processes: each caches for at most the TTL on its own clock, none needs the others."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.processes import ROOT
from tests.secrets.conftest import REGION, aws_admin, env_without_secrets
from tests.secrets.servers import ServerProcess

pytestmark = [pytest.mark.services, pytest.mark.slow]

# A worker: a Django process whose secrets chain runs on a clock read from a file, answering
# one lookup per line of stdin with "value source".
WORKER = """
import os, sys
from pathlib import Path
import django
django.setup()
from cloudops import secrets
clock = Path(os.environ["TEST_CLOCK_FILE"])
secrets.reset(clock=lambda: float(clock.read_text()))
for line in sys.stdin:
    found = secrets.lookup(line.strip())
    print(found.value, found.source, flush=True)
"""


class Worker:
    def __init__(self, env: dict[str, str], clock_file: Path) -> None:
        self.clock_file = clock_file
        self.log = clock_file.with_suffix(".log")
        self.set_clock(1000)
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", WORKER],
                cwd=ROOT,
                env={**env, "TEST_CLOCK_FILE": str(clock_file)},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )

    def set_clock(self, now: float) -> None:
        self.clock_file.write_text(str(now))

    def ask(self, key: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(key + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer, f"worker exited with {self.proc.poll()}:\n{self.log.read_text()[-3000:]}"
        return answer

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def workers(tmp_path: Path, moto: ServerProcess, use_aws: Callable[..., str]) -> Iterator[tuple[str, Worker, Worker]]:
    name = use_aws(moto, {"REPLICATE_API_TOKEN": "r8_v1"})
    env = {
        **env_without_secrets(),
        "DJANGO_SETTINGS_MODULE": "cloudops.settings",
        "SIMPLETUNER_HOME": str(tmp_path / "home"),
        "SIMPLETUNER_SECRETS_TTL": "300",
        "SIMPLETUNER_AWS_SECRET_NAME": name,
        "AWS_REGION": REGION,
    }
    first, second = Worker(env, tmp_path / "clock-1"), Worker(env, tmp_path / "clock-2")
    yield name, first, second
    first.stop()
    second.stop()


def test_every_process_sees_a_rotation_within_its_own_ttl(
    workers: tuple[str, Worker, Worker], moto: ServerProcess
) -> None:
    name, first, second = workers
    assert first.ask("REPLICATE_API_TOKEN") == second.ask("REPLICATE_API_TOKEN") == "r8_v1 aws-secrets-manager"

    aws_admin(moto).put_secret_value(SecretId=name, SecretString=json.dumps({"REPLICATE_API_TOKEN": "r8_v2"}))
    first.set_clock(1299)
    assert first.ask("REPLICATE_API_TOKEN") == "r8_v1 aws-secrets-manager"

    # The first process's TTL runs out: it reads the store again. The second has its own cache
    # and its own TTL; it needs nothing from the first to catch up when that runs out too.
    first.set_clock(1300)
    assert first.ask("REPLICATE_API_TOKEN") == "r8_v2 aws-secrets-manager"
    assert second.ask("REPLICATE_API_TOKEN") == "r8_v1 aws-secrets-manager"
    second.set_clock(1300)
    assert second.ask("REPLICATE_API_TOKEN") == "r8_v2 aws-secrets-manager"
