"""Health with a broken database: 503 with every component, each saying why, never a 500.

Server processes against a database that is really broken: a SQLite file replaced by garbage
under a running server, and PostgreSQL / MariaDB URLs on a port nothing listens on (the
machine's shared database servers are never stopped). The fresh install those servers start
from is `healthy` (the generated audit key is the embedded default, not a problem).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.db import OperationalError
from django.test import override_settings
from rest_framework.test import APIClient

from cloudops.health import Component, guarded
from tests.processes import ROOT
from tests.server.live import free_port, running

# What a server without a database still checks on its own: disk and its background loops.
NO_DATABASE_NEEDED = {"secrets", "background", "output_storage", "rate_limit_backend"}


@guarded("webhooks")
def database_down_check() -> Component:
    raise OperationalError('connection to server at "db.internal" (10.0.0.5), port 5432 failed')


def check_unguarded() -> Component:
    raise OperationalError("no such table: providers_providerconfig")


# --- In process: the guard -------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(
    HEALTH_CHECKS=["cloudops.health.check_database", "tests.health.test_broken_database.database_down_check"]
)
def test_a_check_whose_database_reads_fail_reports_unhealthy_with_a_reason(
    anon: APIClient, staff_client: APIClient
) -> None:
    response = anon.get("/api/cloud/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    webhooks = body["components"][1]
    assert webhooks["name"] == "webhooks" and webhooks["status"] == "unhealthy"
    assert webhooks["message"] == "webhooks cannot be checked: the database is unavailable"
    assert webhooks["latency_ms"] >= 0
    assert "db.internal" not in response.content.decode()
    staff = staff_client.get("/api/cloud/health").json()["components"][1]
    assert staff["error"].startswith("OperationalError: connection to server at")


@pytest.mark.django_db
@override_settings(HEALTH_CHECKS=["tests.health.test_broken_database.check_unguarded"])
def test_a_check_that_raises_anyway_is_reported_under_its_name_not_a_500(anon: APIClient) -> None:
    response = anon.get("/api/cloud/health?include_providers=true")
    assert response.status_code == 503
    [component] = [c for c in response.json()["components"] if c["name"] == "unguarded"]
    assert component["status"] == "unhealthy"
    assert component["message"] == "unguarded cannot be checked: the database is unavailable"


# --- Server processes -------------------------------------------------------------------------------


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """A fresh default install: no database URL, no Redis, no configured audit key."""
    dropped = {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "SIMPLETUNER_AUDIT_KEY"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update({"SIMPLETUNER_HOME": str(home), **extra})
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def staff_key(env: dict[str, str]) -> str:
    admin = {
        **env,
        "DJANGO_SUPERUSER_USERNAME": "admin",
        "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
        "DJANGO_SUPERUSER_PASSWORD": "a long passphrase",
    }
    manage(admin, "createsuperuser", "--noinput")
    return manage(env, "create_api_key", "--user", "admin", "--name", "monitor").strip().splitlines()[-1]


def assert_broken_database_answers(base: str, api_key: str) -> None:
    """The health document is 503 with every component (anonymous, with providers, with a staff
    key that cannot be checked now), readiness is 503, liveness 200."""
    for query in ("", "?include_providers=true"):
        for headers in ({}, {"Authorization": f"Bearer {api_key}"}):
            response = httpx.get(f"{base}/api/cloud/health{query}", headers=headers, timeout=30)
            assert response.status_code == 503, response.text
            body = response.json()
            assert body["status"] == "unhealthy"
            components = {c["name"]: c for c in body["components"]}
            assert components["database"]["status"] == "unhealthy"
            for name, component in components.items():
                assert component["message"], name
                assert "error" not in component, name  # the key could not be checked: anonymous view
                if name not in NO_DATABASE_NEEDED:
                    assert component["status"] == "unhealthy", component
            assert {"audit", "circuit_breakers", "webhooks"} <= set(components)
            if query:
                assert {"provider:local", "provider:replicate"} <= set(components)
    ready = httpx.get(f"{base}/api/cloud/health/ready", timeout=30)
    assert (ready.status_code, ready.json()) == (503, {"status": "not_ready", "failing": ["database"]})
    live = httpx.get(f"{base}/api/cloud/health/live", timeout=30)
    assert (live.status_code, live.json()) == (200, {"status": "ok"})


def assert_no_500(log: Path) -> None:
    text = log.read_text(errors="replace")
    assert '"status": 500' not in text and "Internal Server Error" not in text, text[-5000:]


@pytest.mark.slow
def test_a_fresh_install_is_healthy_and_a_garbage_sqlite_file_answers_503(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = server_env(home, PORT=str(port))
    manage(env, "migrate", "--noinput")
    api_key = staff_key(env)
    log = tmp_path / "server.log"
    with running([sys.executable, "manage.py", "serve"], env, port, log, errors_expected=True) as base:
        fresh = httpx.get(f"{base}/api/cloud/health", timeout=30)
        assert fresh.status_code == 200
        assert fresh.json()["status"] == "healthy", fresh.json()
        audit = next(c for c in fresh.json()["components"] if c["name"] == "audit")
        assert audit["details"]["key_source"] == "file"
        assert httpx.get(f"{base}/api/cloud/health", headers={"Authorization": f"Bearer {api_key}"}).status_code == 200
        database = home / "config" / "cloud" / "jobs.db"
        database.write_bytes(os.urandom(database.stat().st_size))
        for suffix in ("-wal", "-shm"):
            database.with_name(database.name + suffix).unlink(missing_ok=True)
        assert_broken_database_answers(base, api_key)
    assert_no_500(log)


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["postgres://postgres", "mysql://root"])
def test_an_unreachable_server_database_answers_503(tmp_path: Path, scheme: str) -> None:
    port, nothing_there = free_port(), free_port()
    env = server_env(tmp_path / "home", PORT=str(port), DATABASE_URL=f"{scheme}@127.0.0.1:{nothing_there}/cloudops")
    log = tmp_path / "server.log"
    with running([sys.executable, "manage.py", "serve"], env, port, log, errors_expected=True) as base:
        assert_broken_database_answers(base, "sk_" + "x" * 40)
    assert_no_500(log)
