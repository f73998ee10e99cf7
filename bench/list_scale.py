#!/usr/bin/env python
"""Reads whose cost must not grow with history: the job list, its deep pages, a filtered list,
a job, and the admin changelists of jobs and audit entries, at 1k and at 1M jobs (SQLite).

Each size gets a fresh home seeded the way bench/metrics_scrape.py seeds (its own code:
N jobs over 90 days, 2% active, and as many audit entries), a staff API key and an admin
session, and its own `manage.py serve` process. Then, in interleaved rounds (the smallest
size is the anchor), one client times each request sequentially and the medians print as a
table with the ratio to the anchor. Goal: every request at 1M within 2x of 1k.

    .venv/bin/python bench/list_scale.py                          # 1k and 1M (the 1M seed takes minutes)
    .venv/bin/python bench/list_scale.py --jobs 1000 100000 --rounds 3

`offset=900000` was the deep page before offsets were bounded: it is now a 400 at every size
(providers.paging.MAX_JOB_OFFSET) and the table shows it for that reason. Beside it: the
deepest full page an offset still serves (offset 900 of 1k, 9,950 of 1M: 50 jobs either
way) and a cursor 90% down the list.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.webhooks import server_env  # noqa: E402
from tests.server.live import free_port, running  # noqa: E402

AUDIT_KEY = "bench-audit-key-" + "0" * 32


def seed_home(home: str, jobs: int) -> dict[str, str]:
    """In this process: seed `home` with `jobs` jobs and audit entries; the credentials and
    paths the measurements need."""
    from bench import metrics_scrape

    os.environ["SIMPLETUNER_AUDIT_KEY"] = AUDIT_KEY
    metrics_scrape.setup_django(home)
    metrics_scrape.seed(jobs, jobs)
    from audit.services import audit_reanchor

    # The seeded entries are not chained: anchor after them, so the key and the session
    # below (and the admin) can append and verify as on a real server.
    audit_reanchor(reason="bench seed")
    return credentials_and_paths(jobs)


def credentials_and_paths(jobs: int) -> dict[str, str]:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    from cloudops.apikeys import api_key_create
    from providers.models import Job
    from providers.paging import MAX_JOB_OFFSET, JobCursor

    user = get_user_model().objects.get(username="bench")
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    _, key = api_key_create(owner=user, name="bench")
    session = SessionStore()
    session.update(
        {
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
    )
    session.create()
    # Newest first, the job 90% down the list: metrics_scrape numbers jobs oldest first.
    deep = Job.objects.get(pk=f"job-{jobs - 1 - int(jobs * 0.9):020d}")
    middle = f"job-{jobs // 2:020d}"
    return {
        "key": key,
        "cookie": f"{settings.SESSION_COOKIE_NAME}={session.session_key}",
        "cursor": JobCursor(created_at=deep.created_at, id=deep.pk).encode(),
        # The deepest full page an offset still reaches: 90% down at 1k, the bound at 1M.
        "deepest_offset": str(min(int(jobs * 0.9), MAX_JOB_OFFSET - 50)),
        "job": middle,
    }


def requests_of(seeded: dict[str, str]) -> dict[str, str]:
    return {
        "GET /api/cloud/jobs (first page, total)": "/api/cloud/jobs",
        "GET /api/cloud/jobs?offset=900000 (now a 400)": "/api/cloud/jobs?offset=900000",
        "GET /api/cloud/jobs?offset=<deepest full page>": f"/api/cloud/jobs?offset={seeded['deepest_offset']}",
        "GET /api/cloud/jobs?cursor=<90% deep>": f"/api/cloud/jobs?cursor={seeded['cursor']}",
        "GET /api/cloud/jobs?status=running": "/api/cloud/jobs?status=running",
        "GET /api/cloud/jobs/{id}": f"/api/cloud/jobs/{seeded['job']}",
        "admin: jobs changelist": "/admin/providers/job/",
        "admin: audit changelist": "/admin/audit/auditentry/",
    }


def seed_in_subprocess(home: Path, jobs: int) -> dict[str, str]:
    env = server_env(str(home)) | {"SIMPLETUNER_AUDIT_KEY": AUDIT_KEY}
    argv = [sys.executable, __file__, "--seed-home", str(home), "--jobs", str(jobs)]
    out = subprocess.run(argv, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    print(out.stdout.strip().splitlines()[0], flush=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_once(client: httpx.Client, url: str, headers: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    response = client.get(url, headers=headers)
    return (time.perf_counter() - started) * 1000, response.status_code


def measure(base: str, seeded: dict[str, str], client: httpx.Client, repeat: int) -> dict[str, tuple[float, int]]:
    """Each request's median over `repeat` sequential calls, and its status."""
    results = {}
    for name, path in requests_of(seeded).items():
        auth = (
            {"Cookie": seeded["cookie"]} if path.startswith("/admin/") else {"Authorization": f"Bearer {seeded['key']}"}
        )
        calls = [time_once(client, base + path, auth) for _ in range(repeat)]
        results[name] = (statistics.median(ms for ms, _ in calls), calls[-1][1])
    return results


def print_table(sizes: list[int], medians: dict[int, dict[str, float]], statuses: dict[int, dict[str, int]]) -> None:
    anchor, names = sizes[0], list(medians[sizes[0]])
    head = " | ".join(f"{size:,} jobs" for size in sizes)
    ratios = " | ".join(f"{size:,} / {anchor:,}" for size in sizes[1:])
    print(f"\n| request | {head} | {ratios} | status |")
    print("|---|" + "---:|" * (2 * len(sizes) - 1) + "---|")
    for name in names:
        cells = " | ".join(f"{medians[size][name]:.1f} ms" for size in sizes)
        ratio = " | ".join(f"{medians[size][name] / medians[anchor][name]:.2f}x" for size in sizes[1:])
        codes = "/".join(sorted({str(statuses[size][name]) for size in sizes}))
        print(f"| {name} | {cells} | {ratio} | {codes} |")
    print("\nload average: " + " ".join(f"{value:.2f}" for value in os.getloadavg()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=7, help="calls per request per round")
    parser.add_argument("--seed-home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_home:
        print(json.dumps(seed_home(args.seed_home, args.jobs[0])))
        return
    with tempfile.TemporaryDirectory(prefix="bench-list-scale-") as root:
        run(sorted(args.jobs), Path(root), args.rounds, args.repeat)


def run(sizes: list[int], root: Path, rounds_wanted: int, repeat: int) -> None:
    seeded = {size: seed_in_subprocess(root / str(size), size) for size in sizes}
    rounds: dict[int, list[dict[str, tuple[float, int]]]] = {size: [] for size in sizes}
    with ExitStack() as stack, httpx.Client(timeout=120) as client:
        bases = {}
        for size in sizes:
            port, env = free_port(), server_env(str(root / str(size))) | {"SIMPLETUNER_AUDIT_KEY": AUDIT_KEY}
            serve = [sys.executable, "manage.py", "serve", "--port", str(port)]
            bases[size] = stack.enter_context(running(serve, env | {"PORT": str(port)}, port, root / f"{size}.log"))
            measure(bases[size], seeded[size], client, 2)  # warm: the first requests read settings rows
        for number in range(1, rounds_wanted + 1):
            for size in sizes:
                rounds[size].append(measure(bases[size], seeded[size], client, repeat))
            print(f"round {number}/{rounds_wanted} done (load {os.getloadavg()[0]:.2f})", flush=True)
    medians = {s: {n: statistics.median(r[n][0] for r in rounds[s]) for n in rounds[s][0]} for s in sizes}
    statuses = {s: {n: rounds[s][-1][n][1] for n in rounds[s][-1]} for s in sizes}
    print_table(sizes, medians, statuses)


if __name__ == "__main__":
    main()
