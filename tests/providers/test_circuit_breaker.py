from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from providers import circuit
from providers.circuit import circuit_before_call, circuit_record_failure, circuit_snapshot
from providers.config import provider_config_get
from providers.errors import CircuitOpenError, ProviderAuthError, ProviderUnavailable
from providers.http import ProviderHTTP, RetryPolicy
from providers.models import CircuitBreaker, CircuitState
from tests.fakes.http import LoopbackServer, Recorded, Reply
from tests.processes import spawn_django, wait_all
from tests.providers.helpers import race

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def breaker_settings(settings: SettingsWrapper) -> None:
    settings.SIMPLETUNER_CIRCUIT_FAILURE_THRESHOLD = 3
    settings.SIMPLETUNER_CIRCUIT_OPEN_SECONDS = 60
    settings.SIMPLETUNER_CIRCUIT_HALF_OPEN_PROBES = 1


class Switch:
    """A provider that fails with `status` until told otherwise."""

    def __init__(self, status: int = 503) -> None:
        self.status = status

    def __call__(self, recorded: Recorded) -> Reply:
        return Reply(self.status, body={"detail": f"status {self.status}"})


@pytest.fixture
def switch() -> Switch:
    return Switch()


@pytest.fixture
def server(switch: Switch) -> Iterator[LoopbackServer]:
    with LoopbackServer(switch) as running:
        yield running


def call(server: LoopbackServer) -> dict:
    policy = RetryPolicy(retries=0, backoff=0, backoff_max=0, retry_after_max=0)
    http = ProviderHTTP(provider_config_get("replicate"), base_url=server.url(), policy=policy)
    return http.request("GET", "/account", idempotent=True).json()


def breaker() -> CircuitBreaker:
    return CircuitBreaker.objects.get(provider="replicate")


def time_passes(seconds: float) -> None:
    """Move the breaker's clock: the open interval started `seconds` earlier than recorded."""
    row = breaker()
    CircuitBreaker.objects.filter(pk=row.pk).update(
        opened_at=row.opened_at - timedelta(seconds=seconds) if row.opened_at else None,
        probe_started_at=row.probe_started_at - timedelta(seconds=seconds) if row.probe_started_at else None,
    )


def open_circuit(server: LoopbackServer) -> None:
    for _ in range(3):
        with pytest.raises(ProviderUnavailable):
            call(server)


def test_it_opens_after_the_threshold_and_then_fails_fast(server: LoopbackServer) -> None:
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            call(server)
    assert breaker().state == CircuitState.CLOSED
    with pytest.raises(ProviderUnavailable):
        call(server)
    assert breaker().state == CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as caught:
        call(server)
    assert len(server.requests) == 3  # the fourth call never reached the provider
    assert 59 <= caught.value.retry_after <= 60
    assert caught.value.http_status == 503


def test_a_success_resets_the_consecutive_count(server: LoopbackServer, switch: Switch) -> None:
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            call(server)
    switch.status = 200
    call(server)
    assert breaker().consecutive_failures == 0
    switch.status = 503
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            call(server)
    assert breaker().state == CircuitState.CLOSED
    assert breaker().failures_total == 4


def test_client_errors_never_open_it(server: LoopbackServer, switch: Switch) -> None:
    switch.status = 401
    for _ in range(5):
        with pytest.raises(ProviderAuthError):
            call(server)
    assert breaker().state == CircuitState.CLOSED
    assert breaker().failures_total == 0


def test_after_the_interval_one_probe_goes_through_and_its_success_closes_it(
    server: LoopbackServer, switch: Switch
) -> None:
    open_circuit(server)
    time_passes(61)
    switch.status = 200
    assert call(server) == {"detail": "status 200"}
    row = breaker()
    assert (row.state, row.consecutive_failures, row.failures_total) == (CircuitState.CLOSED, 0, 3)


def test_a_failed_probe_opens_it_again_for_a_new_interval(server: LoopbackServer) -> None:
    open_circuit(server)
    time_passes(61)
    with pytest.raises(ProviderUnavailable):
        call(server)
    row = breaker()
    assert row.state == CircuitState.OPEN
    assert timezone.now() - row.opened_at < timedelta(seconds=5)
    with pytest.raises(CircuitOpenError):
        call(server)
    assert len(server.requests) == 4


def test_while_a_probe_is_in_flight_other_calls_fail_fast() -> None:
    now = timezone.now()
    for _ in range(3):
        circuit_record_failure("replicate", probe=False, error="503", now=now)
    later = now + timedelta(seconds=61)
    assert circuit_before_call("replicate", now=later) is True
    with pytest.raises(CircuitOpenError):
        circuit_before_call("replicate", now=later)
    assert breaker().state == CircuitState.HALF_OPEN


def test_a_probe_whose_process_died_is_written_off_after_the_interval() -> None:
    now = timezone.now()
    for _ in range(3):
        circuit_record_failure("replicate", probe=False, error="503", now=now)
    assert circuit_before_call("replicate", now=now + timedelta(seconds=61)) is True
    # ... and that process never reports back.
    assert circuit_before_call("replicate", now=now + timedelta(seconds=200)) is True


def test_a_manual_reset_closes_it_but_keeps_the_failure_count(server: LoopbackServer) -> None:
    open_circuit(server)
    circuit.circuit_reset("replicate")
    row = breaker()
    assert (row.state, row.consecutive_failures, row.failures_total) == (CircuitState.CLOSED, 0, 3)


def test_the_snapshot_reports_every_provider_with_metric_values(server: LoopbackServer) -> None:
    open_circuit(server)
    snapshot = {c.provider: c for c in circuit_snapshot()}
    assert set(snapshot) == {"local", "replicate"}
    assert (snapshot["local"].state, snapshot["local"].state_value, snapshot["local"].failures_total) == (
        "closed",
        0,
        0,
    )
    assert (snapshot["replicate"].state_value, snapshot["replicate"].failures_total) == (2, 3)
    assert 0 < snapshot["replicate"].retry_in_seconds <= 60


def test_health_reports_an_open_circuit_as_degraded(server: LoopbackServer, anon: APIClient) -> None:
    component = next(c for c in anon.get("/api/cloud/health").json()["components"] if c["name"] == "circuit_breakers")
    assert component["status"] == "healthy"
    assert component["message"] == "All provider circuits closed"
    open_circuit(server)
    response = anon.get("/api/cloud/health")
    assert response.status_code == 200
    component = next(c for c in response.json()["components"] if c["name"] == "circuit_breakers")
    assert component["status"] == "degraded"
    assert component["message"] == "Circuit not closed: replicate (open)"
    assert component["details"]["replicate"] == {"state": "open", "failures_total": 3}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_failures_in_other_processes_open_it_for_everyone() -> None:
    # The workers run with the default threshold (5): 3 failures each only open it together.
    code = """
        from providers.circuit import circuit_record_failure
        for _ in range(3):
            circuit_record_failure("replicate", probe=False, error="503 from a worker")
    """
    wait_all([spawn_django(code) for _ in range(2)])
    row = breaker()
    assert (row.state, row.failures_total) == (CircuitState.OPEN, 6)
    with pytest.raises(CircuitOpenError):
        circuit_before_call("replicate")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_exactly_one_process_gets_the_half_open_probe(tmp_path: Path) -> None:
    opened = timezone.now() - timedelta(seconds=120)
    CircuitBreaker.objects.create(provider="replicate", state=CircuitState.OPEN, opened_at=opened, failures_total=3)
    code = """
        from providers.circuit import circuit_before_call
        from providers.errors import CircuitOpenError
        try:
            print("probe" if circuit_before_call("replicate") else "closed")
        except CircuitOpenError:
            print("rejected")
    """
    outputs = sorted(out.strip() for out in race(code, 3, tmp_path))
    assert outputs == ["probe", "rejected", "rejected"]
    assert breaker().state == CircuitState.HALF_OPEN
