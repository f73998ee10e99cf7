from __future__ import annotations

import asyncio

import pytest
from django.test import AsyncClient, Client, override_settings

from tests.logs import urls as test_urls

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.logs.urls")]


async def test_concurrent_async_requests_never_share_ids_or_context(json_records: list[dict]) -> None:
    test_urls._barrier.clear()
    client = AsyncClient()
    tags = [f"t{i}" for i in range(test_urls.BARRIER_SIZE)]
    responses = await asyncio.gather(
        *(client.get(f"/test/concurrent/{tag}", headers={"X-Request-ID": f"req-{tag}"}) for tag in tags)
    )
    for tag, response in zip(tags, responses, strict=True):
        body = response.json()
        assert response["X-Request-ID"] == f"req-{tag}"
        assert body == {"correlation_id": f"req-{tag}", "after": f"req-{tag}", "context": {"tag": tag}}
    inside = [r for r in json_records if r["message"] == "inside"]
    assert len(inside) == len(tags)
    for record in inside:
        assert record["correlation_id"] == "req-" + record["extra"]["tag"]
        assert record["extra"]["step"] == "after-barrier"


def test_it_generates_an_id_when_none_is_sent() -> None:
    response = Client().get("/test/sync")
    generated = response["X-Request-ID"]
    assert len(generated) == 32
    assert response.json()["correlation_id"] == generated


def test_it_accepts_x_correlation_id() -> None:
    response = Client().get("/test/sync", headers={"X-Correlation-ID": "abc123def456"})
    assert response["X-Request-ID"] == "abc123def456"


@pytest.mark.parametrize("bad", ["has space", "x" * 200, "<script>", "a\tb", "-leading-dash"])
def test_it_replaces_an_invalid_incoming_id(bad: str) -> None:
    response = Client().get("/test/sync", headers={"X-Request-ID": bad})
    assert response["X-Request-ID"] != bad
    assert len(response["X-Request-ID"]) == 32


def test_every_request_gets_one_access_log_line(json_records: list[dict]) -> None:
    Client().get("/api/users/me", headers={"X-Request-ID": "access-1"}, REMOTE_ADDR="127.0.0.1")
    access = [r for r in json_records if r["logger"] == "simpletuner.cloud.access"]
    assert len(access) == 1
    line = access[0]
    assert line["correlation_id"] == "access-1"
    assert line["extra"]["method"] == "GET"
    assert line["extra"]["route"] == "/api/users/me"
    assert line["extra"]["status"] == 401
    assert line["extra"]["client_ip"] == "127.0.0.1"
    assert line["extra"]["duration_ms"] >= 0


def test_the_access_log_uses_the_route_pattern_not_the_raw_path(json_records: list[dict]) -> None:
    Client().delete("/api/auth/api-keys/12345")
    access = [r for r in json_records if r["logger"] == "simpletuner.cloud.access"]
    assert access[0]["extra"]["route"] == "/api/auth/api-keys/<int:key_id>"


def test_the_access_log_uses_the_trusted_client_ip(json_records: list[dict]) -> None:
    Client().get("/test/sync", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.77")
    Client().get("/test/sync", REMOTE_ADDR="203.0.113.1", HTTP_X_FORWARDED_FOR="198.51.100.77")
    ips = [r["extra"]["client_ip"] for r in json_records if r["logger"] == "simpletuner.cloud.access"]
    assert ips == ["198.51.100.77", "203.0.113.1"]


@pytest.mark.server_errors_expected("a view that raises, to check the 500 body")
@override_settings(DEBUG_PROPAGATE_EXCEPTIONS=False)
def test_a_server_error_is_json_without_internals_but_with_the_correlation_id(json_records: list[dict]) -> None:
    client = Client(raise_request_exception=False)
    response = client.get("/test/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error.", "correlation_id": "boom-1"}
    assert "secret internals" not in response.content.decode()
    errors = [r for r in json_records if r["level"] == "ERROR"]
    assert errors and "RuntimeError: secret internals" in errors[0]["exception"]
    assert errors[0]["correlation_id"] == "boom-1"


def test_unknown_api_paths_are_json_404(db: None) -> None:
    response = Client().get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
