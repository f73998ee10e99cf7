from __future__ import annotations

import json
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEntry
from providers.config import provider_config_get
from providers.models import ProviderConfig
from tests.fakes.http import self_signed_tls

pytestmark = pytest.mark.django_db


def put(client: APIClient, provider: str, body: object, *, method: str = "put") -> object:
    return getattr(client, method)(
        f"/api/cloud/providers/{provider}", data=json.dumps(body), content_type="application/json"
    )


def test_the_provider_list_is_public_and_shows_only_names_and_state(anon: APIClient) -> None:
    response = anon.get("/api/cloud/providers")
    assert response.status_code == 200
    assert response.json() == {
        "providers": [
            {"name": "local", "display_name": "Local (this machine)", "enabled": True},
            {"name": "replicate", "display_name": "Replicate", "enabled": False},
        ]
    }
    assert ProviderConfig.objects.count() == 2


def test_staff_read_the_whole_configuration_with_effective_values(staff_client: APIClient) -> None:
    response = staff_client.get("/api/cloud/providers/replicate")
    assert response.status_code == 200
    provider = response.json()["provider"]
    assert provider["name"] == "replicate"
    assert provider["webhook_require_signature"] is True
    assert provider["webhook_allowed_ips"] == []
    assert provider["http_timeout"] is None
    assert provider["effective"]["http_timeout"] == 30.0
    assert provider["effective"]["ssl_verify"] is True
    assert provider["effective"]["webhook_url"].endswith("/api/webhooks/replicate")
    assert provider["hardware_prices"]["gpu-h100-8x"]["price_per_hour"] == 43.92
    assert provider["circuit_breaker"]["state"] == "closed"
    assert provider["cost_limit"]["percent_used"] == 0.0


def test_the_guides_allowlist_example_works_as_written(staff_client: APIClient) -> None:
    response = put(staff_client, "replicate", {"webhook_allowed_ips": ["10.0.0.0/8", "192.168.0.0/16"]})
    assert response.status_code == 200
    assert response.json()["provider"]["webhook_allowed_ips"] == ["10.0.0.0/8", "192.168.0.0/16"]
    assert ProviderConfig.objects.get(name="replicate").webhook_allowed_ips == ["10.0.0.0/8", "192.168.0.0/16"]


def test_the_guides_proxy_and_ssl_example_works_as_written(staff_client: APIClient, tmp_path: Path) -> None:
    tls = self_signed_tls(tmp_path)
    body = {
        "ssl_verify": True,
        "ssl_ca_bundle": str(tls.ca_pem),
        "proxy_url": "http://proxy:8080",
        "http_timeout": 60.0,
    }
    response = put(staff_client, "replicate", body)
    assert response.status_code == 200, response.json()
    stored = ProviderConfig.objects.get(name="replicate")
    assert (stored.ssl_verify, stored.ssl_ca_bundle, stored.proxy_url, stored.http_timeout) == (
        True,
        str(tls.ca_pem),
        "http://proxy:8080",
        60.0,
    )
    assert response.json()["provider"]["effective"]["http_timeout"] == 60.0


def test_put_changes_only_the_fields_sent(staff_client: APIClient) -> None:
    put(staff_client, "replicate", {"webhook_allowed_ips": ["10.0.0.0/8"]})
    put(staff_client, "replicate", {"http_timeout": 45})
    stored = ProviderConfig.objects.get(name="replicate")
    assert stored.webhook_allowed_ips == ["10.0.0.0/8"]
    assert stored.http_timeout == 45.0


def test_patch_and_the_config_alias_update_too(staff_client: APIClient) -> None:
    assert put(staff_client, "local", {"s3_public_url": "https://st.example.com"}, method="patch").status_code == 200
    response = staff_client.put("/api/cloud/providers/local/config", data={"s3_endpoint_enabled": False}, format="json")
    assert response.status_code == 200
    stored = ProviderConfig.objects.get(name="local")
    assert stored.s3_public_url == "https://st.example.com"
    assert stored.s3_endpoint_enabled is False
    assert staff_client.get("/api/cloud/providers/local/config").json()["provider"]["s3_endpoint_enabled"] is False


def test_ips_and_ipv6_networks_are_normalised(staff_client: APIClient) -> None:
    response = put(staff_client, "replicate", {"webhook_allowed_ips": ["1.2.3.4", "2001:db8::1/32", " 10.1.2.3/8 "]})
    assert response.status_code == 200
    assert response.json()["provider"]["webhook_allowed_ips"] == ["1.2.3.4/32", "2001:db8::/32", "10.0.0.0/8"]


def test_every_change_is_audited_with_the_changed_fields_and_no_secrets(staff_client: APIClient) -> None:
    put(staff_client, "replicate", {"proxy_url": "http://ops:hunter2@proxy.corp:3128", "http_timeout": 30})
    entry = AuditEntry.objects.get(event_type="provider.configured")
    assert entry.target_id == "replicate"
    assert entry.actor_username == "olivia"
    assert entry.details["changed"] == ["http_timeout", "proxy_url"]
    assert entry.details["values"]["proxy_url"] == "http://ops:***@proxy.corp:3128"
    assert "hunter2" not in json.dumps(entry.details)
    response = staff_client.get("/api/cloud/providers/replicate")
    assert response.json()["provider"]["proxy_url"] == "http://ops:***@proxy.corp:3128"
    assert "hunter2" not in response.content.decode()


def test_sending_back_the_redacted_proxy_keeps_the_stored_password(staff_client: APIClient) -> None:
    put(staff_client, "replicate", {"proxy_url": "http://ops:hunter2@proxy.corp:3128"})
    put(staff_client, "replicate", {"proxy_url": "http://ops:***@proxy.corp:3128"})
    assert ProviderConfig.objects.get(name="replicate").proxy_url == "http://ops:hunter2@proxy.corp:3128"
    assert AuditEntry.objects.filter(event_type="provider.configured").count() == 1


def test_the_placeholder_with_another_host_is_a_400_not_the_old_password(staff_client: APIClient) -> None:
    put(staff_client, "replicate", {"proxy_url": "http://ops:hunter2@proxy.corp:3128"})
    response = put(staff_client, "replicate", {"proxy_url": "http://ops:***@evil.example:3128"})
    assert response.status_code == 400
    assert "proxy_url" in response.json()["errors"]
    assert "type the password for this proxy" in response.json()["detail"]
    assert ProviderConfig.objects.get(name="replicate").proxy_url == "http://ops:hunter2@proxy.corp:3128"


def test_an_unchanged_value_writes_no_audit_entry(staff_client: APIClient) -> None:
    put(staff_client, "replicate", {"webhook_require_signature": True})
    assert not AuditEntry.objects.filter(event_type="provider.configured").exists()


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"webhook_allowed_ips": ["10.0.0.0/33"]}, "webhook_allowed_ips", "not an IP address or CIDR"),
        ({"webhook_allowed_ips": ["not-an-ip"]}, "webhook_allowed_ips", "not an IP address or CIDR"),
        ({"webhook_allowed_ips": "10.0.0.0/8"}, "webhook_allowed_ips", "Expected a list"),
        ({"webhook_allowed_ips": [10]}, "webhook_allowed_ips", "Must be a string"),
        ({"ssl_verify": "no"}, "ssl_verify", "Must be a valid boolean"),
        ({"webhook_require_signature": 0}, "webhook_require_signature", "Must be a valid boolean"),
        ({"http_timeout": 0}, "http_timeout", "more than 0 and at most 600"),
        ({"http_timeout": 601}, "http_timeout", "more than 0 and at most 600"),
        ({"http_timeout": "fast"}, "http_timeout", "valid number"),
        ({"proxy_url": "proxy:8080"}, "proxy_url", "not an absolute http(s) URL"),
        ({"proxy_url": "ftp://proxy:21"}, "proxy_url", "not an absolute http(s) URL"),
        ({"proxy_url": "http://proxy:99999"}, "proxy_url", "invalid port"),
        ({"s3_public_url": "https://x.example.com/?a=1"}, "s3_public_url", "query string"),
        ({"ssl_ca_bundle": "/nonexistent/ca.pem"}, "ssl_ca_bundle", "does not exist"),
        ({"ssl_ca_bundle": "relative/ca.pem"}, "ssl_ca_bundle", "absolute path"),
        ({"s3_output_path": "outputs"}, "s3_output_path", "absolute path"),
        ({"cost_limit_period": "hourly"}, "cost_limit_period", "not a valid choice"),
        ({"cost_limit_action": "explode"}, "cost_limit_action", "not a valid choice"),
        ({"cost_limit_amount": -1}, "cost_limit_amount", "greater than or equal to 0"),
        ({"cost_limit_enabled": True}, "cost_limit_amount", "more than 0 while cost_limit_enabled"),
        ({"hardware": {"GPU X": {"price_per_second": 1}}}, "hardware", "not a hardware id"),
        ({"hardware": {"gpu-x": {"price_per_second": -1}}}, "hardware", "price_per_second must be a number"),
        ({"hardware": {"gpu-x": {"price": 1}}}, "hardware", "must be an object with price_per_second"),
        ({"default_hardware": "gpu-tpu"}, "default_hardware", "not in this provider's hardware table"),
        ({"model": "no-slash"}, "model", "owner/name"),
        ({"version_override": "bad version!"}, "version_override", "version id"),
        ({"enabled": True, "colour": "blue"}, "colour", "Unknown field"),
    ],
)
def test_invalid_fields_are_a_400_naming_field_and_reason(
    staff_client: APIClient, body: dict, field: str, reason: str
) -> None:
    before = provider_config_get("replicate")
    response = put(staff_client, "replicate", body)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert reason in response.json()["detail"]
    assert response.json()["detail"].startswith(field) or f"; {field}" in response.json()["detail"]
    stored = ProviderConfig.objects.get(name="replicate")
    assert stored.enabled is False and stored.webhook_allowed_ips == [] and stored.http_timeout is None
    assert stored.updated_at == before.updated_at
    assert not AuditEntry.objects.filter(event_type="provider.configured").exists()


def test_a_file_that_is_not_a_pem_bundle_is_refused(staff_client: APIClient, tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("just text\n")
    response = put(staff_client, "replicate", {"ssl_ca_bundle": str(bogus)})
    assert response.status_code == 400
    assert "contains no PEM certificate" in response.json()["detail"]
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    response = put(staff_client, "replicate", {"ssl_ca_bundle": str(broken)})
    assert response.status_code == 400
    assert "not a valid PEM CA bundle" in response.json()["detail"]


def test_hardware_prices_override_the_defaults(staff_client: APIClient) -> None:
    body = {"hardware": {"gpu-h100": {"price_per_second": 0.002, "label": "H100 (negotiated)"}}}
    response = put(staff_client, "replicate", body)
    assert response.status_code == 200
    prices = response.json()["provider"]["hardware_prices"]
    assert prices["gpu-h100"] == {"label": "H100 (negotiated)", "price_per_second": 0.002, "price_per_hour": 7.2}
    assert prices["gpu-l40s"]["price_per_second"] == pytest.approx(3.51 / 3600)


def test_bad_json_is_a_400(staff_client: APIClient) -> None:
    response = staff_client.put("/api/cloud/providers/replicate", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_a_body_that_is_not_an_object_is_a_400(staff_client: APIClient) -> None:
    response = put(staff_client, "replicate", ["10.0.0.0/8"])
    assert response.status_code == 400
    assert "Expected a dictionary" in response.json()["detail"]


def test_an_unknown_provider_is_a_404(staff_client: APIClient) -> None:
    assert staff_client.get("/api/cloud/providers/azure").status_code == 404
    response = put(staff_client, "azure", {"enabled": True})
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert not ProviderConfig.objects.filter(name="azure").exists()


def test_configuration_needs_authentication(anon: APIClient) -> None:
    assert anon.get("/api/cloud/providers/replicate").status_code == 401
    response = put(anon, "replicate", {"webhook_allowed_ips": []})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_configuration_is_staff_only(alice_client: APIClient) -> None:
    assert alice_client.get("/api/cloud/providers/replicate").status_code == 403
    response = put(alice_client, "replicate", {"enabled": True})
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Staff status and the providers.change_providerconfig permission are required."
    }
    assert not ProviderConfig.objects.filter(name="replicate", enabled=True).exists()


def test_providers_are_neither_created_nor_deleted_through_the_api(anon: APIClient, staff_client: APIClient) -> None:
    assert anon.post("/api/cloud/providers", data={"name": "azure"}, format="json").status_code == 405
    assert staff_client.post("/api/cloud/providers", data={"name": "azure"}, format="json").status_code == 405
    assert staff_client.delete("/api/cloud/providers/replicate").status_code == 405
    assert not ProviderConfig.objects.filter(name="azure").exists()
