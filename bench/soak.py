"""Soak-and-fault run: the production topology on loopback, loaded for N minutes while faults
are injected, then checked for anything lost, doubled or leaked.

    .venv/bin/python bench/soak.py --minutes 10 --processes 3
    .venv/bin/python bench/soak.py --minutes 2 --processes 3      # what .ci/run runs

Starts a scratch PostgreSQL database (on the local server), a Redis server of its own, P
`manage.py serve` processes under a supervisor that restarts them, nginx in front with the
kit's site (deploy/nginx/cloudops.conf) and a Replicate stand-in. Clients submit jobs (local
and Replicate, with idempotency keys and retries), deliver signed webhooks (duplicates, out of
order), upload checkpoints with boto3 multipart to each job's bucket and download them, hold
event streams that resume with Last-Event-ID, read the API, scrape metrics and guess
passwords into the login rate limit. Faults, in turn: kill -9 of a server, Redis restarted,
pg_terminate_backend of the servers' connections, a client hanging up mid-upload.

At the end the invariants are checked (docs/soak.md); any violation exits 1. The last line
prints the totals and p50/p99 latency per endpoint.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.soaklib import checks  # noqa: E402
from bench.soaklib.faults import injector  # noqa: E402
from bench.soaklib.record import Recorder  # noqa: E402
from bench.soaklib.stack import Stack, running_stack  # noqa: E402
from bench.soaklib.workload import (  # noqa: E402
    StreamReader,
    User,
    World,
    password_guesser,
    reader,
    replicate_driver,
    scraper,
    submitter,
)

DRAIN_SECONDS = 180


def setup(stack: Stack) -> tuple[list[User], User, str, int]:
    """Users and API keys, the Replicate provider on, the metrics export on (full template),
    in this process's own Django pointed at the run's database. Returns the users, the staff
    user, the login victim's name and the newest event id before the run."""
    os.environ.update(stack.env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections

    from cloudops.apikeys import api_key_create
    from cloudops.metrics.categories import TEMPLATES
    from cloudops.metrics.services import metrics_config_update
    from providers.config import provider_config_get
    from providers.events import latest_event_id

    model = get_user_model()
    staff_user = model.objects.create_superuser("soak-admin", password=secrets.token_urlsafe(16))
    staff = User("soak-admin", staff_user.pk, api_key_create(owner=staff_user, name="soak")[1], staff=True)
    users = []
    for name in ("soak-alice", "soak-bob"):
        user = model.objects.create_user(name, password=secrets.token_urlsafe(16))
        users.append(User(name, user.pk, api_key_create(owner=user, name="soak")[1]))
    victim = model.objects.create_user("soak-victim", password=secrets.token_urlsafe(16)).get_username()
    replicate = provider_config_get("replicate")
    replicate.enabled = True
    replicate.save()
    metrics_config_update(prometheus_enabled=True, prometheus_categories=list(TEMPLATES["full"]["categories"]))
    floor = latest_event_id()
    connections.close_all()
    return users, staff, victim, floor


def start(world: World, target: Callable[..., None], *args: object, name: str) -> threading.Thread:
    """A client thread; one that dies of an exception is a violation (the run would
    otherwise go on with less load and say nothing)."""

    def guarded() -> None:
        try:
            target(world, *args)
        except Exception as exc:
            world.rec.violation(f"client thread {name} crashed: {type(exc).__name__}: {exc}")
            traceback.print_exc()

    thread = threading.Thread(target=guarded, name=name, daemon=True)
    thread.start()
    return thread


def drain(world: World, threads: list[threading.Thread]) -> None:
    """Stop new work, let the drivers finish their predictions and the jobs end."""
    from providers.models import Job

    world.stop.set()
    deadline = time.monotonic() + DRAIN_SECONDS
    for thread in threads:
        thread.join(timeout=max(1.0, deadline - time.monotonic()))
    while time.monotonic() < deadline:
        active = Job.objects.exclude(status__in=("completed", "failed", "cancelled")).count()
        if not active:
            break
        time.sleep(1)
    # Three heartbeats: every stream has caught up from the event rows since the last change.
    time.sleep(3 * 3 + 2)


def report(world: World, args: argparse.Namespace, summaries: dict[str, str], elapsed: float) -> str:
    rec = world.rec
    print("\n== invariants")
    for name, summary in summaries.items():
        print(f"{name:>12}: {summary}")
    print("\n== faults")
    for fault in rec.faults:
        took = (fault.recovered or fault.started) - fault.started
        print(f"  {fault.kind:<30} {fault.detail:<60} recovered in {took:.1f}s")
    print(f"  server restarts by the supervisor: {world.stack.supervisor.restarts}")
    if rec.notes:
        print("\n== notes")
        for what, n in sorted(rec.notes.items()):
            print(f"  {n:>5}  {what}")
    print("\n== latency per endpoint (answered requests)")
    latencies = rec.latencies()
    for endpoint, (count, p50, p99) in latencies.items():
        print(f"  {endpoint:<40} {count:>6}  p50 {p50:8.1f} ms  p99 {p99:8.1f} ms")
    if rec.violations:
        print(f"\n== {len(rec.violations)} violations")
        for violation in rec.violations:
            print("  " + violation)
    jobs = len(world.submissions)
    webhooks = sum(len(d.outcomes) for d in world.deliveries.values())
    per_endpoint = ", ".join(f"{e} {p50:.0f}/{p99:.0f}" for e, (_, p50, p99) in latencies.items())
    return (
        f"soak {args.minutes:g} min x {args.processes} processes ({elapsed / 60:.1f} min in all):"
        f" requests={len(rec.requests)} jobs={jobs} webhooks={webhooks}"
        f" bytes_up={rec.bytes_up} bytes_down={rec.bytes_down} faults={len(rec.faults)}"
        f" violations={len(rec.violations)} | p50/p99 ms: {per_endpoint}"
    )


def run(args: argparse.Namespace, root: Path) -> int:
    began = time.monotonic()
    rec = Recorder()
    with running_stack(args.processes, root) as stack:
        print(f"stack up: nginx {stack.url}, {args.processes} servers, redis :{stack.redis.port}", flush=True)
        users, staff, victim, floor = setup(stack)
        world = World(stack, rec, users, staff, victim)
        readers = [StreamReader(world, user, seed=i) for i, user in enumerate([*users, staff])]
        for stream in readers:
            stream.start()
            stream.connected.wait(30)
        work = [start(world, submitter, u, 5.0, 0.15, i, name=f"submit-{u.name}") for i, u in enumerate(users)]
        work += [start(world, replicate_driver, 100 + i, name=f"replicate-{i}") for i in range(2)]
        work += [start(world, reader, u, 2.0, 200 + i, name=f"read-{u.name}") for i, u in enumerate(users)]
        work += [start(world, scraper, 5.0, name="scrape"), start(world, password_guesser, 1.5, 7, name="guess")]
        duration = args.minutes * 60
        every = min(30.0, max(10.0, (duration - 30) / 5))
        work.append(start(world, injector, min(20.0, duration / 6), every, 11, name="faults"))
        world.stop.wait(duration)
        print("workload done; draining", flush=True)
        drain(world, work)
        for stream in readers:
            stream.finish.set()
        for stream in readers:
            stream.join(timeout=40)
        summaries = {
            "submissions": checks.submissions(world),
            "webhooks": checks.webhooks(world),
            "uploads": checks.uploads(world),
            "streams": checks.streams(world, readers, floor),
            "rate limits": checks.login_limit(world),
            "audit": checks.audit_chain(world),
            "5xx": checks.server_errors(rec),
            "memory": checks.memory(world),
            "server logs": checks.logs(world),
        }
        from django.db import connections

        connections.close_all()
        line = report(world, args, summaries, time.monotonic() - began)
    print(line, flush=True)
    return 1 if rec.violations else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (logs) afterwards")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="soak-"))
    print(f"soak: {args.minutes:g} min, {args.processes} processes, files in {root}", flush=True)
    try:
        return run(args, root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
