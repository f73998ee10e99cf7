"""GET /api/cloud/hints: each hint while its condition holds and only then, never a secret."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, override_settings
from rest_framework.test import APIClient

from cloudops.metrics.services import metrics_config_update
from providers.config import provider_config_get

pytestmark = pytest.mark.django_db

DOCS = Path(settings.BASE_DIR) / "docs"
TOKEN = "r8_hints_token_value_never_shown"
PUBLIC_URL = "https://uploads.example.com"


@pytest.fixture(autouse=True)
def _no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)


def configure(name: str, **fields: object) -> None:
    config = provider_config_get(name)
    for field, value in fields.items():
        setattr(config, field, value)
    config.save()


def hints(client: APIClient | Client) -> dict[str, dict[str, str]]:
    response = client.get("/api/cloud/hints")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return {hint["id"]: hint for hint in response.json()["hints"]}


def test_a_fresh_install_hints_only_that_metrics_export_is_off(anon: APIClient) -> None:
    # local is enabled by default and runs here: it needs neither a public URL nor a token.
    assert list(hints(anon)) == ["metrics_export_off"]
    assert hints(anon)["metrics_export_off"]["severity"] == "info"


def test_metrics_export_hint_goes_once_export_is_on(anon: APIClient) -> None:
    metrics_config_update(prometheus_enabled=True)
    assert "metrics_export_off" not in hints(anon)


def test_an_enabled_cloud_provider_without_a_public_url_is_hinted(anon: APIClient) -> None:
    configure("replicate", enabled=True)
    hint = hints(anon)["public_url_missing"]
    assert hint["severity"] == "warning"
    assert "SIMPLETUNER_PUBLIC_URL" in hint["message"] and "replicate" in hint["message"]


def test_a_public_url_from_the_environment_or_the_provider_silences_it(anon: APIClient) -> None:
    configure("replicate", enabled=True)
    with override_settings(SIMPLETUNER_PUBLIC_URL=PUBLIC_URL):
        assert "public_url_missing" not in hints(anon)
    configure("replicate", s3_public_url=PUBLIC_URL)
    assert "public_url_missing" not in hints(anon)


def test_a_disabled_cloud_provider_needs_no_public_url_nor_token(anon: APIClient) -> None:
    configure("replicate", enabled=False, webhook_require_signature=False)
    found = hints(anon)
    assert not {"public_url_missing", "provider_token_missing:replicate", "webhook_signature_off:replicate"} & set(
        found
    )


def test_an_enabled_provider_without_its_token_is_hinted(anon: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    configure("replicate", enabled=True)
    hint = hints(anon)["provider_token_missing:replicate"]
    assert hint["severity"] == "warning"
    assert "REPLICATE_API_TOKEN" in hint["message"]
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    assert "provider_token_missing:replicate" not in hints(anon)


def test_unsigned_webhooks_are_hinted_per_enabled_provider(anon: APIClient) -> None:
    configure("local", webhook_require_signature=False)
    found = hints(anon)
    assert "webhook_signature_off:local" in found
    assert "webhook_require_signature" in found["webhook_signature_off:local"]["message"]
    configure("local", webhook_require_signature=True)
    assert "webhook_signature_off:local" not in hints(anon)


def test_warnings_come_before_information(anon: APIClient) -> None:
    configure("replicate", enabled=True)
    severities = [hint["severity"] for hint in hints(anon).values()]
    assert severities == sorted(severities, key=["warning", "info"].index)
    assert severities[-1] == "info"


def test_no_secret_or_configured_value_ever_appears(anon: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    monkeypatch.setenv("REPLICATE_WEBHOOK_SECRET", "whsec_hints_secret_never_shown")
    configure(
        "replicate",
        enabled=True,
        webhook_require_signature=False,
        proxy_url="http://user:proxy-password@proxy.example:3128",
    )
    configure("local", webhook_require_signature=False)
    body = anon.get("/api/cloud/hints").content.decode()
    for secret in (TOKEN, "whsec_hints_secret_never_shown", "proxy-password", settings.SECRET_KEY):
        assert secret not in body
    # And with every hint showing, the configured URLs are not echoed either.
    monkeypatch.delenv("REPLICATE_API_TOKEN")
    body = anon.get("/api/cloud/hints").content.decode()
    assert "proxy.example" not in body and "r8_" not in body


def test_every_hint_links_to_its_section_of_the_docs(anon: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    configure("replicate", enabled=True, webhook_require_signature=False)
    found = hints(anon)
    assert len(found) == 4
    page = (DOCS / "hints.md").read_text()
    sections = set(re.findall(r"^## (\S+)$", page, re.MULTILINE))
    for hint_id, hint in found.items():
        base, _, anchor = hint["docs_url"].partition("#")
        assert base == settings.SIMPLETUNER_DOCS_URL + "hints/"
        assert anchor in sections and hint_id.split(":")[0] == anchor


@override_settings(SIMPLETUNER_DOCS_URL="https://docs.example.com/cloudops/")
def test_the_links_start_with_the_configured_docs_site(anon: APIClient) -> None:
    hint = hints(anon)["metrics_export_off"]
    assert hint["docs_url"] == "https://docs.example.com/cloudops/hints/#metrics_export_off"


def test_anonymous_callers_may_read_it_whatever_else_they_send() -> None:
    # No credentials at all, a plain Django client (no Accept header), and curl's */*.
    assert "metrics_export_off" in hints(Client())
    assert "metrics_export_off" in hints(Client(HTTP_ACCEPT="*/*"))


@override_settings(RATE_LIMIT_CALLS=2)
def test_it_is_never_rate_limited() -> None:
    client = Client(REMOTE_ADDR="203.0.113.77")
    for _ in range(6):
        response = client.get("/api/cloud/hints", REMOTE_ADDR="203.0.113.77")
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response
    assert client.get("/api/cloud/jobs", REMOTE_ADDR="203.0.113.77")["X-RateLimit-Limit"] == "2"


def test_only_get_is_allowed(anon: APIClient) -> None:
    response = anon.post("/api/cloud/hints", {}, format="json")
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "POST" not allowed.'}


def test_the_schema_documents_it_as_public_and_not_rate_limited(anon: APIClient) -> None:
    schema = anon.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/cloud/hints"]["get"]
    assert set(operation["responses"]) == {"200"}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/HintsOutput")
    hint = schema["components"]["schemas"]["HintOutput"]
    assert set(hint["properties"]) == {"id", "severity", "message", "docs_url"}
