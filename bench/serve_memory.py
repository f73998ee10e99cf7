#!/usr/bin/env python
"""The resident memory of one `manage.py serve` process, idle and under a light mixed load.

What deploy/kubernetes/deployment.yaml's resource requests and the systemd units' memory
limits are sized from. Starts a real server (uvicorn, the production default) on a fresh
SIMPLETUNER_HOME, with the background sync and metrics threads running as in production and
the `full` metrics template on, then reads VmRSS and VmHWM (the peak) from /proc/<pid>/status:

- idle: after start-up and a few seconds of quiet;
- loaded: after `--seconds` of `--clients` threads looping over the health endpoints, the jobs
  list (API key), a full metrics scrape and small uploads, with `--streams` event streams held
  open and one large streamed upload (`--upload-mib`) through the S3 endpoint;
- settled: a few seconds after the load stopped.

It also prints the server's average CPU use during the load (user + system from /proc).

    .venv/bin/python bench/serve_memory.py                                  # SQLite, no Redis
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_serve_memory \\
    REDIS_URL=redis://127.0.0.1:6379/14 .venv/bin/python bench/serve_memory.py   # an empty database

Figures are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.server.live import free_port, running_process  # noqa: E402


def server_env(home: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SIMPLETUNER_HOME=home,
        DJANGO_SETTINGS_MODULE="cloudops.settings",
        SIMPLETUNER_AUDIT_KEY="bench-audit-key-" + "0" * 32,
        SIMPLETUNER_SERVER_KEY="bench-server-key-" + "0" * 32,
        SECRET_KEY="bench-secret-key-" + "0" * 40,
        SIMPLETUNER_LOG_LEVEL="WARNING",
        SIMPLETUNER_S3_MIN_FREE_BYTES="0",
    )
    return env


def prepare(env: dict[str, str]) -> tuple[str, str, str]:
    """Migrate, then create a staff API key and a running job; (api key, bucket, upload token)."""
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from cloudops.apikeys import api_key_create
    from cloudops.metrics.services import metrics_apply_template
    from providers.config import provider_config_get
    from providers.credentials import job_upload_bearer
    from providers.models import Job, JobStatus

    user = get_user_model().objects.create_user("bench", is_staff=True)
    _, key = api_key_create(owner=user, name="bench")
    metrics_apply_template(name="full")
    provider_config_get("local")
    job = Job.objects.create(owner=user, provider="local", status=JobStatus.RUNNING)
    return key, job.pk, job_upload_bearer(job.upload_token)


def memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of `pid`, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    block = os.urandom(size)
    for start in range(0, total, size):
        yield block[: min(size, total - start)]


def load(base: str, key: str, bucket: str, token: str, seconds: float, clients: int) -> int:
    import httpx

    auth = {"Authorization": f"Bearer {key}"}
    stop = time.monotonic() + seconds
    done = [0] * clients

    def client(n: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            i = 0
            while time.monotonic() < stop:
                for path in ("/api/cloud/health/live", "/api/cloud/health/ready", "/api/cloud/health"):
                    http.get(path).raise_for_status()
                http.get("/api/cloud/jobs", headers=auth).raise_for_status()
                http.get("/api/cloud/metrics/prometheus").raise_for_status()
                url = f"/api/cloud/storage/{bucket}/small/{n}-{i}.bin"
                http.put(url, content=os.urandom(64 * 1024), headers={"X-Upload-Token": token}).raise_for_status()
                done[n] += 6
                i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done)


def hold_streams(base: str, key: str, count: int, until: threading.Event) -> None:
    import httpx

    def stream() -> None:
        with (
            httpx.Client(base_url=base, timeout=httpx.Timeout(30, read=60)) as http,
            http.stream("GET", "/api/events/stream", headers={"Authorization": f"Bearer {key}"}) as response,
        ):
            for _ in response.iter_lines():
                if until.is_set():
                    return

    for _ in range(count):
        threading.Thread(target=stream, daemon=True).start()


def big_upload(base: str, bucket: str, token: str, mib: int) -> None:
    import httpx

    size = mib << 20
    headers = {"X-Upload-Token": token, "Content-Length": str(size)}
    url = f"{base}/api/cloud/storage/{bucket}/big.bin"
    httpx.put(url, content=chunks(size), headers=headers, timeout=600).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--upload-mib", type=int, default=1024)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cloudops-bench-") as home:
        env = server_env(home)
        key, bucket, token = prepare(env)
        port = free_port()
        argv = [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]
        with running_process(argv, env, port, Path(home) / "server.log") as (base, server):
            time.sleep(5)
            idle = memory(server.pid)
            cpu_before, started = cpu_seconds(server.pid), time.monotonic()
            stop_streams = threading.Event()
            hold_streams(base, key, args.streams, stop_streams)
            uploader = threading.Thread(target=big_upload, args=(base, bucket, token, args.upload_mib))
            uploader.start()
            requests = load(base, key, bucket, token, args.seconds, args.clients)
            uploader.join()
            loaded = memory(server.pid)
            cpu = (cpu_seconds(server.pid) - cpu_before) / (time.monotonic() - started)
            stop_streams.set()
            time.sleep(5)
            settled = memory(server.pid)
    database = os.environ.get("DATABASE_URL", "").split(":", 1)[0] or "sqlite"
    print(f"database: {database}, redis: {'yes' if os.environ.get('REDIS_URL') else 'no'}")
    print(
        f"load: {requests} requests by {args.clients} clients in {args.seconds:.0f} s, "
        f"{args.streams} event streams open, one {args.upload_mib} MiB upload; "
        f"server CPU {cpu:.2f} cores on average meanwhile"
    )
    print("| moment | VmRSS MiB | VmHWM (peak) MiB |")
    print("|---|---:|---:|")
    for name, figures in (("idle", idle), ("loaded", loaded), ("settled", settled)):
        print(f"| {name} | {figures['VmRSS']:.1f} | {figures['VmHWM']:.1f} |")


if __name__ == "__main__":
    main()
