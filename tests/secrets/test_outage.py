"""A store goes down mid-test (its server is killed), the chain falls back and health says so."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from cloudops import secrets
from tests.secrets.conftest import RETRY, TTL, FakeClock, aws_admin, vault_write
from tests.secrets.servers import ServerProcess

pytestmark = [pytest.mark.services, pytest.mark.django_db, pytest.mark.slow]

AWS_VALUE = "r8_from_aws_0a1b2c"
VAULT_VALUE = "r8_from_vault_3d4e5f"


def secrets_component(client: APIClient) -> dict[str, Any]:
    response = client.get("/api/cloud/health")
    assert response.status_code == 200
    return next(c for c in response.json()["components"] if c["name"] == "secrets")


@pytest.fixture
def aws_and_vault(
    own_moto: ServerProcess, bao: ServerProcess, use_aws: Callable[..., str], use_vault: Callable[..., str]
) -> str:
    name = use_aws(own_moto, {"REPLICATE_API_TOKEN": AWS_VALUE})
    use_vault(bao, {"REPLICATE_API_TOKEN": VAULT_VALUE})
    return name


def test_when_aws_dies_vault_answers_and_health_is_degraded(
    aws_and_vault: str, own_moto: ServerProcess, clock: FakeClock, anon: APIClient, staff_client: APIClient
) -> None:
    assert secrets.get_secret("REPLICATE_API_TOKEN") == AWS_VALUE
    own_moto.kill()

    # Within the TTL the cached document still answers: nothing was contacted.
    assert secrets.lookup("REPLICATE_API_TOKEN").source == "aws-secrets-manager"

    clock.advance(TTL)
    found = secrets.lookup("REPLICATE_API_TOKEN")
    assert (found.value, found.source) == (VAULT_VALUE, "vault")
    assert len(found.errors) == 1 and found.errors[0].startswith("aws-secrets-manager: ")
    assert "EndpointConnectionError" in found.errors[0]

    public = secrets_component(anon)
    assert public["status"] == "degraded"
    assert public["message"] == "Unavailable: aws-secrets-manager"
    assert public["details"] == {
        "sources": {"REPLICATE_API_TOKEN": "vault"},
        "providers": {"environment": "ok", "aws-secrets-manager": "unavailable", "vault": "ok"},
    }
    assert "error" not in public
    assert anon.get("/api/cloud/health").json()["status"] == "degraded"

    staff = secrets_component(staff_client)
    assert staff["error"].startswith("aws-secrets-manager: AWS secret ")
    assert "EndpointConnectionError" in staff["error"]


def test_a_failed_store_is_retried_after_the_retry_interval_and_recovers(
    aws_and_vault: str, own_moto: ServerProcess, clock: FakeClock, anon: APIClient
) -> None:
    assert secrets.get_secret("REPLICATE_API_TOKEN") == AWS_VALUE
    own_moto.kill()
    clock.advance(TTL)
    assert secrets.get_secret("REPLICATE_API_TOKEN") == VAULT_VALUE

    # The store comes back (empty, as a restarted stand-in is) and the secret is recreated.
    own_moto.start()
    aws_admin(own_moto).create_secret(Name=aws_and_vault, SecretString='{"REPLICATE_API_TOKEN": "r8_after_restart"}')

    # Until the retry interval passes the failure is remembered: no request per lookup.
    clock.advance(RETRY - 1)
    assert secrets.lookup("REPLICATE_API_TOKEN").source == "vault"
    assert secrets_component(anon)["status"] == "degraded"

    # Then the store is asked again: a failure is never cached as "no secrets".
    clock.advance(1)
    found = secrets.lookup("REPLICATE_API_TOKEN")
    assert (found.value, found.source, found.errors) == ("r8_after_restart", "aws-secrets-manager", ())
    component = secrets_component(anon)
    assert component["status"] == "healthy"
    assert component["details"]["providers"]["aws-secrets-manager"] == "ok"


def test_when_the_only_store_with_a_key_dies_the_key_is_missing_and_both_are_reported(
    own_bao: ServerProcess,
    use_vault: Callable[..., str],
    clock: FakeClock,
    anon: APIClient,
    settings: Settings,
) -> None:
    path = use_vault(own_bao, {"REPLICATE_API_TOKEN": VAULT_VALUE})
    assert secrets.get_secret("REPLICATE_API_TOKEN") == VAULT_VALUE
    own_bao.kill()
    clock.advance(TTL)

    found = secrets.lookup("REPLICATE_API_TOKEN")
    assert found.value is None and found.errors[0].startswith("vault: ")
    component = secrets_component(anon)
    assert component["status"] == "degraded"
    assert component["message"] == "Unavailable: vault; Not configured: REPLICATE_API_TOKEN"
    assert component["details"]["sources"] == {"REPLICATE_API_TOKEN": None}

    # A new dev server on the same address (dev servers keep nothing) with the secret again.
    own_bao.start()
    vault_write(own_bao, path, {"REPLICATE_API_TOKEN": "r8_back"})
    clock.advance(RETRY)
    assert secrets.get_secret("REPLICATE_API_TOKEN") == "r8_back"
    assert secrets_component(anon)["status"] == "healthy"


def test_an_outage_of_a_store_below_the_answer_still_degrades_health(
    aws_and_vault: str, own_moto: ServerProcess, clock: FakeClock, anon: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment answers, so lookups never need AWS; health still checks every store.
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_env")
    own_moto.kill()
    assert secrets.lookup("REPLICATE_API_TOKEN").errors == ()
    component = secrets_component(anon)
    assert component["status"] == "degraded"
    assert component["details"]["sources"] == {"REPLICATE_API_TOKEN": "environment"}
    assert component["details"]["providers"]["aws-secrets-manager"] == "unavailable"
