"""Background loops survive any failure, back off, and health says when one is dead or late
(issue 13, defect 1: one failed pass used to end the thread for good)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest
from django.db import connection

from cloudops import background
from cloudops.background import MAX_BACKOFF_SECONDS, PeriodicThread
from cloudops.health import check_background
from cloudops.structured_logging import get_logger


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def loops() -> Iterator[list[PeriodicThread]]:
    """Loops made by a test are stopped and forgotten afterwards."""
    made: list[PeriodicThread] = []
    yield made
    for loop in made:
        loop.stop()
        background._Registry.loops.remove(loop)


def make(loops: list[PeriodicThread], work: Callable[[], None], interval: float = 0.01) -> PeriodicThread:
    loop = PeriodicThread(f"test-{len(loops)}", work, lambda: interval, wait_first=False)
    loops.append(loop)
    return loop


@pytest.mark.server_errors_expected("the failing passes log their tracebacks on purpose")
def test_a_loop_survives_failing_passes_and_recovers(loops: list[PeriodicThread]) -> None:
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        if len(calls) <= 2:
            raise KeyError("thread")  # what the old handler itself raised

    loop = make(loops, work)
    loop.start()
    wait_until(lambda: len(calls) >= 3 and loop.last_success is not None)
    state = loop.state()
    assert state.alive and state.failures_in_a_row == 0 and "KeyError" in state.last_error


@pytest.mark.server_errors_expected("a failing pass logs its traceback on purpose")
def test_a_loop_survives_a_logging_handler_that_raises(loops: list[PeriodicThread]) -> None:
    class Broken(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise OSError("disk full")

    handler = Broken()
    handler.handleError = lambda record: (_ for _ in ()).throw(OSError("disk full"))  # type: ignore[method-assign]
    logging.getLogger("simpletuner.cloud.background").addHandler(handler)
    passes: list[int] = []

    def work() -> None:
        passes.append(1)
        raise RuntimeError("database down")

    try:
        loop = make(loops, work)
        loop.start()
        wait_until(lambda: len(passes) >= 2, timeout=5)
        assert loop.state().alive
    finally:
        logging.getLogger("simpletuner.cloud.background").removeHandler(handler)


def test_failures_in_a_row_back_off_up_to_a_cap(loops: list[PeriodicThread]) -> None:
    loop = make(loops, lambda: None, interval=30)
    assert loop.next_wait() == 30
    loop.failures_in_a_row = 1
    assert loop.next_wait() == 60
    loop.failures_in_a_row = 3
    assert loop.next_wait() == 240
    loop.failures_in_a_row = 30
    assert loop.next_wait() == MAX_BACKOFF_SECONDS
    slow = make(loops, lambda: None, interval=600)
    slow.failures_in_a_row = 5
    assert slow.next_wait() == 600  # never shorter than the interval itself


def test_logging_a_reserved_record_attribute_as_extra_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="simpletuner.cloud.test"):
        get_logger("simpletuner.cloud.test").info(
            "pass failed", extra={"thread": "jobs-sync", "name": "x", "loop": "y"}
        )
    record = caplog.records[-1]
    assert (record.thread_, record.name_, record.loop) == ("jobs-sync", "x", "y")  # type: ignore[attr-defined]


def test_a_loop_stopped_on_purpose_is_not_reported(loops: list[PeriodicThread]) -> None:
    loop = make(loops, lambda: None)
    loop.start()
    loop.stop()
    assert loop.name not in [state.name for state in background.loops()]


def test_health_reports_every_loop_on_time(loops: list[PeriodicThread]) -> None:
    loop = make(loops, lambda: None)
    loop.start()
    wait_until(lambda: loop.last_success is not None)
    component = check_background()
    assert component is not None and component.status == "healthy"
    assert component.details[loop.name]["running"] is True


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_health_reports_a_loop_whose_thread_is_gone_as_unhealthy(loops: list[PeriodicThread]) -> None:
    def work() -> None:
        raise SystemExit  # not an Exception: ends the thread, as nothing a pass raises should

    loop = make(loops, work)
    loop.start()
    wait_until(lambda: not loop.state().alive)
    component = check_background()
    assert component is not None and component.status == "unhealthy"
    assert loop.name in component.message and "Not running" in component.message


@pytest.mark.server_errors_expected("the failing passes log their tracebacks on purpose")
def test_health_reports_a_loop_without_a_successful_pass_for_three_intervals_as_late(
    loops: list[PeriodicThread],
) -> None:
    def work() -> None:
        raise RuntimeError("database down")

    loop = make(loops, work, interval=0.05)
    loop.start()
    wait_until(lambda: loop.failures_in_a_row >= 2)
    time.sleep(0.2)  # three intervals without a success
    component = check_background()
    assert component is not None and component.status == "degraded"
    assert "Late" in component.message and "database down" in (component.error or "")


@pytest.mark.django_db(transaction=True)
@pytest.mark.server_errors_expected("the pass that loses its connection logs its traceback")
def test_a_loop_whose_database_connection_is_terminated_mid_pass_keeps_working(loops: list[PeriodicThread]) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("pg_terminate_backend is PostgreSQL's (the fault the defect was found with)")
    import psycopg

    settings_dict = connection.settings_dict
    outcomes: list[str] = []

    def work() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
            if not outcomes:  # the first pass: another session ends ours, as an operator would
                with psycopg.connect(
                    host=settings_dict["HOST"] or "127.0.0.1",
                    port=settings_dict["PORT"] or 5432,
                    user=settings_dict["USER"],
                    dbname=settings_dict["NAME"],
                    autocommit=True,
                ) as other:
                    other.execute("SELECT pg_terminate_backend(%s)", [pid])
                outcomes.append("terminated")
            cursor.execute("SELECT 1")
        outcomes.append("ok")

    loop = make(loops, work, interval=0.05)
    loop.start()
    wait_until(lambda: outcomes.count("ok") >= 2, timeout=20)
    assert outcomes[:2] == ["terminated", "ok"]  # the first pass failed, the next ones ran
    assert "OperationalError" in loop.last_error
    assert loop.state().alive and loop.failures_in_a_row == 0
