"""No backend admits more than the limit under real concurrency: 4 OS processes x 25 threads
hit one key with limit 50, and exactly 50 get in (on the suite's database and on Redis)."""

from __future__ import annotations

import json
import time

import pytest

from cloudops.ratelimit.backends.database import DatabaseBackend
from cloudops.ratelimit.backends.redis import RedisBackend
from tests.processes import django_env, spawn_django, wait_all

pytestmark = [pytest.mark.slow, pytest.mark.services]

PROCESSES, THREADS, LIMIT = 4, 25, 50

WORKER = """
import json, os, threading, time
from django.db import connections
from cloudops.ratelimit.backends.base import BackendUnavailable
from cloudops.ratelimit.limiter import RateLimiter

limiter = RateLimiter(LIMIT, 60, "concurrency")
start = float(os.environ["RL_START"])
results = []

def work():
    time.sleep(max(0.0, start - time.time()))  # every thread of every process starts together
    try:
        results.append("admitted" if limiter.hit_sync("one-key").allowed else "refused")
    except BackendUnavailable as exc:
        results.append(f"error: {exc}")
    finally:
        connections.close_all()

threads = [threading.Thread(target=work) for _ in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(results))
"""


def run_workers(**env: str) -> list[str]:
    code = WORKER.replace("LIMIT", str(LIMIT)).replace("THREADS", str(THREADS))
    start = str(time.time() + 4)  # after every interpreter has set Django up
    procs = [spawn_django(code, env=django_env(RL_START=start, **env)) for _ in range(PROCESSES)]
    return [result for out in wait_all(procs) for result in json.loads(out)]


@pytest.mark.django_db(transaction=True)
def test_the_database_backend_admits_exactly_the_limit() -> None:
    results = run_workers(STATE_BACKEND="database")
    assert len(results) == PROCESSES * THREADS
    assert [r for r in results if r.startswith("error")] == []
    assert results.count("admitted") == LIMIT
    usage = DatabaseBackend().hit("concurrency:one-key", limit=LIMIT, window=60, now=time.time(), record=False)
    assert usage.count == LIMIT
    assert DatabaseBackend().violations_total() == PROCESSES * THREADS - LIMIT


@pytest.mark.django_db(transaction=True)
def test_the_redis_backend_admits_exactly_the_limit(redis_url: str) -> None:
    results = run_workers(STATE_BACKEND="redis", STATE_BACKEND_URL=redis_url)
    assert len(results) == PROCESSES * THREADS
    assert [r for r in results if r.startswith("error")] == []
    assert results.count("admitted") == LIMIT
    backend = RedisBackend(redis_url)
    assert backend.hit("concurrency:one-key", limit=LIMIT, window=60, now=time.time(), record=False).count == LIMIT
    assert backend.violations_total() == PROCESSES * THREADS - LIMIT
