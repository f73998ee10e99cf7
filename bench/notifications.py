#!/usr/bin/env python
"""Outbound notifications on SQLite: outbox throughput and the cost of an event on a job move.

- throughput: N events queued for one webhook channel, then drained by the delivery worker
  (`deliveries_drain`: claim, sign, POST to a loopback receiver, record the attempt), in
  events/s; anchored against the same N bare POSTs with one reused httpx client, so the ratio
  is what signing, the per-send client, the DNS check and the bookkeeping cost;
- a job transition (`job_transition` queued -> running, with its audit entry and live event)
  with no channel, and with one channel subscribed to `job.started`: the difference is the
  added cost of an event (the outbox row) on the change.

    .venv/bin/python bench/notifications.py              # 500 events, 300 transitions
    .venv/bin/python bench/notifications.py --events 100 --transitions 100

A fresh SQLite database in a temporary SIMPLETUNER_HOME. Figures are in bench/README.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.django_setup import setup_django  # noqa: E402


class Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def receiver() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hook"


def bare_posts(url: str, n: int) -> float:
    import httpx

    body = b'{"type":"test","timestamp":"2026-12-06T00:00:00Z","data":{}}'
    with httpx.Client() as client:
        started = time.perf_counter()
        for _ in range(n):
            client.post(url, content=body, headers={"Content-Type": "application/json"})
        return time.perf_counter() - started


def throughput(url: str, n: int) -> tuple[float, float]:
    from django.db import transaction

    from cloudops.notify import notify
    from notifications.delivery import deliveries_drain
    from notifications.models import Channel, Delivery

    Channel.objects.create(
        name="bench", channel_type="webhook", events=["credit.low"], url=url, secret="whsec_YmVuY2g="
    )
    started = time.perf_counter()
    for i in range(n):
        with transaction.atomic():
            notify("credit.low", {"provider": f"p{i}", "balance_usd": 1.0})
    queued = time.perf_counter() - started
    started = time.perf_counter()
    deliveries_drain(passes=n)
    drained = time.perf_counter() - started
    assert Delivery.objects.filter(status="delivered").count() == n, "not everything was delivered"
    Channel.objects.all().delete()
    return queued, drained


def transitions(n: int) -> float:
    from django.contrib.auth.models import User

    from providers.jobs import job_transition
    from providers.models import Job, JobStatus

    owner, _ = User.objects.get_or_create(username="bench")
    jobs = [
        Job.objects.create(owner=owner, provider="local", hardware="local", status=JobStatus.QUEUED) for _ in range(n)
    ]
    started = time.perf_counter()
    for job in jobs:
        job_transition(job=job, to=JobStatus.RUNNING, reason="bench")
    return time.perf_counter() - started


def transition_cost(url: str, n: int) -> tuple[float, float]:
    from notifications.models import Channel

    transitions(20)  # warm up
    without = transitions(n)
    Channel.objects.create(
        name="jobs", channel_type="webhook", events=["job.started"], url=url, secret="whsec_YmVuY2g="
    )
    with_channel = transitions(n)
    return without, with_channel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--transitions", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        setup_django(
            Path(home), env={"SIMPLETUNER_NOTIFICATIONS_ALLOW_PRIVATE": "true", "SIMPLETUNER_BACKGROUND_SYNC": "false"}
        )
        url = receiver()
        anchor = bare_posts(url, args.events)
        queued, drained = throughput(url, args.events)
        without, with_channel = transition_cost(url, args.transitions)
    n, t = args.events, args.transitions
    print(f"outbox: {n} events queued in {queued:.2f} s ({queued / n * 1000:.2f} ms each, one transaction each)")
    print(f"outbox: {n} delivered in {drained:.2f} s = {n / drained:.0f} events/s")
    print(f"anchor: {n} bare POSTs, one reused httpx client: {anchor:.2f} s = {n / anchor:.0f} POSTs/s")
    print(f"        delivery costs {drained / anchor:.1f}x a bare POST")
    print(f"job transition, no channel:          {without / t * 1000:.2f} ms")
    print(f"job transition, one channel listens: {with_channel / t * 1000:.2f} ms")
    print(f"        an event adds {(with_channel - without) / t * 1000:.2f} ms ({with_channel / without:.2f}x)")


if __name__ == "__main__":
    main()
