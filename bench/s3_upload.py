"""Upload throughput and server memory of the S3 endpoint, against two reference receivers.

One run uploads the same file with boto3's `upload_file` (its defaults: 8 MiB multipart parts,
10 threads) to:
  (a) our server under the production server (`manage.py serve`: uvicorn),
  (b) bench/stdlib_s3.py, a standard-library receiver that just writes to disk,
  (c) moto in server mode,
and prints MiB/s, the ratios, and our server's resident memory before and at its peak.
Goals: >= 0.5x the stdlib receiver, >= 1.5x moto, RSS growth < 128 MiB, <= 3.5 CPU s per GiB.
`--rounds N` uploads to every target N times, interleaved, and reports the medians.

    .venv/bin/python bench/s3_upload.py                  # 1 GiB
    .venv/bin/python bench/s3_upload.py --size-mib 256 --targets ours,ours-daphne,ours-https

Extra targets: `ours-daphne` (the same server under daphne), `ours-https` (uvicorn with TLS,
where boto3 sends aws-chunked bodies with CRC32 trailers) and `stock-django` (uvicorn serving
Django's stock ASGI handler, which spools each body to a temporary file before the view).
`--single-put` sends the whole file in one put_object, which shows per-request buffering. Files go to a temporary folder on
the same disk as the checkout (bench/out/) and are removed afterwards.

Memory is evened out before each upload. This machine is a virtual machine that hands freed
memory back to its host (free page reporting): the first touch of such memory costs about
1.5-2 CPU seconds per GiB in page faults, memory freed moments ago about 0.2. Every target
fills the page cache with twice the file (the parts, then the assembled object), so the figures
depended on what ran just before: the stdlib receiver, up 0.3 s after our server's files were
deleted, reused their warm memory (1.0 CPU s per GiB; 2.6 when it ran first), while our server,
seconds to start, met cold memory. So right before each upload the bench writes and deletes a
scratch file of twice the upload's size, the same for every target (`--no-warm`: as before).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.server.live import free_port, running_process  # noqa: E402

MiB = 1024 * 1024


class RssSampler(threading.Thread):
    """Samples a process's resident set size every 20 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopped = pid, 0, threading.Event()

    def rss(self) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.peak = max(self.peak, self.rss())
            except OSError:
                return
            time.sleep(0.02)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (from /proc), a load-independent cost."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


MODE = {"single_put": False, "warm": True, "drop_caches": False}


def warm_memory(folder: Path, size: int) -> None:
    """Write and delete 2 x `size` bytes, so the upload that follows finds memory just freed.
    With --drop-caches, empty the page cache first (root only): how much of it earlier runs
    left full changes every receiver's CPU per GiB by a third on the bench machine."""
    if MODE["drop_caches"]:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    if not MODE["warm"]:
        return
    scratch, block = folder / "scratch.bin", bytearray(8 * MiB)
    with scratch.open("wb") as f:
        for _ in range(2 * size // len(block)):
            f.write(block)
    scratch.unlink()


def upload(endpoint: str, key_id: str, secret: str, bucket: str, source: Path, verify: str | bool = True) -> float:
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        verify=verify,
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=20),
    )
    warm_memory(source.parent, source.stat().st_size)
    started = time.perf_counter()
    if MODE["single_put"]:
        with source.open("rb") as body:
            client.put_object(Bucket=bucket, Key="bench/upload.bin", Body=body)
    else:
        client.upload_file(str(source), bucket, "bench/upload.bin", Config=TransferConfig())
    return time.perf_counter() - started


@dataclass
class Result:
    name: str
    seconds: float
    size: int
    rss_before: int = 0
    rss_peak: int = 0
    cpu: float = 0.0

    @property
    def mib_s(self) -> float:
        return self.size / MiB / self.seconds


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 * MiB):
            digest.update(block)
    return digest.hexdigest()


JOB_CODE = """
from django.contrib.auth import get_user_model
from providers.config import provider_config_get
from providers.credentials import job_upload_secret
from providers.models import Job
provider_config_get("local")
owner = get_user_model().objects.create_user("bench")
job = Job.objects.create(owner=owner, provider="local", status="running")
print(job.id, job.upload_token, job_upload_secret(job))
"""


def running_job(env: dict[str, str]) -> tuple[str, str, str]:
    """A running job in the bench server's database: (bucket, access key id, secret)."""
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", JOB_CODE],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    bucket, key_id, secret = done.stdout.split()[-3:]
    return bucket, key_id, secret


def run_ours(source: Path, work: Path, server: str, https: bool, tls: tuple[str, str, str] | None) -> Result:
    """Our server through `manage.py serve`; server "stock-django" is uvicorn serving Django's
    own ASGI handler (bodies spooled before the view), to measure that design."""
    home = work / f"home-{server}{'-https' if https else ''}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        SIMPLETUNER_HOME=str(home),
        SIMPLETUNER_SERVER=server if server != "stock-django" else "uvicorn",
        SIMPLETUNER_LOG_LEVEL="WARNING",
        SIMPLETUNER_BACKGROUND_SYNC="false",
    )
    ca = None
    if https and tls:
        env.update(SIMPLETUNER_SSL_CERT=tls[0], SIMPLETUNER_SSL_KEY=tls[1])
        ca = tls[2]
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    bucket, key_id, secret = running_job(env)
    port = free_port()
    argv = [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if server == "stock-django":
        argv = [sys.executable, "-m", "uvicorn", "bench.stock_asgi:application", "--port", str(port), "--no-access-log"]
        argv += ["--http", "httptools", "--loop", "uvloop", "--lifespan", "off"]
    with running_process(argv, env, port, work / f"{home.name}.log", ca=ca) as (base, proc):
        sampler = RssSampler(proc.pid)
        before, cpu = sampler.rss(), cpu_seconds(proc.pid)
        sampler.start()
        seconds = upload(base + "/api/cloud/storage", key_id, secret, bucket, source, ca or True)
        cpu = cpu_seconds(proc.pid) - cpu
        sampler.stopped.set()
        sampler.join()
    stored = home / "outputs" / bucket / "bench" / "upload.bin"
    if sha256(stored) != sha256(source):
        raise SystemExit(f"{server}: the stored object differs from the source")
    shutil.rmtree(home)
    name = f"ours ({server}{', https' if https else ''})"
    return Result(name, seconds, source.stat().st_size, before, sampler.peak, cpu)


def run_stdlib(source: Path, work: Path) -> Result:
    folder, port = work / "stdlib", free_port()
    argv = [sys.executable, "bench/stdlib_s3.py", str(port), str(folder)]
    with running_process(argv, dict(os.environ), port, work / "stdlib.log", ready_path="/") as (base, proc):
        cpu = cpu_seconds(proc.pid)
        seconds = upload(base, "x", "y", "bucket", source)
        cpu = cpu_seconds(proc.pid) - cpu
    shutil.rmtree(folder)
    return Result("stdlib receiver", seconds, source.stat().st_size, cpu=cpu)


def run_moto(source: Path, work: Path) -> Result:
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-p", str(port)]
    with running_process(argv, dict(os.environ), port, work / "moto.log", ready_path="/moto-api/") as (endpoint, proc):
        boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1"
        ).create_bucket(Bucket="bench")
        cpu = cpu_seconds(proc.pid)
        seconds = upload(endpoint, "x", "y", "bench", source)
        cpu = cpu_seconds(proc.pid) - cpu
    return Result("moto server", seconds, source.stat().st_size, cpu=cpu)


def make_source(path: Path, size: int) -> None:
    block = os.urandom(16 * MiB)
    with path.open("wb") as f:
        written = 0
        while written < size:
            written += f.write(block[: min(len(block), size - written)])


def tls_files(work: Path) -> tuple[str, str, str]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    paths = (work / "cert.pem", work / "key.pem", work / "ca.pem")
    cert.cert_chain_pems[0].write_to_path(str(paths[0]))
    cert.private_key_pem.write_to_path(str(paths[1]))
    ca.cert_pem.write_to_path(str(paths[2]))
    return str(paths[0]), str(paths[1]), str(paths[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--targets", default="ours,stdlib,moto")
    parser.add_argument(
        "--single-put", action="store_true", help="one put_object of the whole file instead of upload_file"
    )
    parser.add_argument("--no-warm", action="store_true", help="skip evening out memory before each upload")
    parser.add_argument(
        "--drop-caches", action="store_true", help="empty the page cache before each upload (needs root)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="upload to every target this many times, interleaved; report medians"
    )
    args = parser.parse_args()
    MODE["single_put"], MODE["warm"], MODE["drop_caches"] = args.single_put, not args.no_warm, args.drop_caches
    work = ROOT / "bench" / "out" / f"run-{os.getpid()}"
    work.mkdir(parents=True)
    try:
        source = work / "source.bin"
        make_source(source, args.size_mib * MiB)
        tls = tls_files(work)
        runners: dict[str, Callable[[], Result]] = {
            "ours": lambda: run_ours(source, work, "uvicorn", False, None),
            "ours-https": lambda: run_ours(source, work, "uvicorn", True, tls),
            "ours-daphne": lambda: run_ours(source, work, "daphne", False, None),
            "stock-django": lambda: run_ours(source, work, "stock-django", False, None),
            "stdlib": lambda: run_stdlib(source, work),
            "moto": lambda: run_moto(source, work),
        }
        rounds: list[dict[str, Result]] = []
        for number in range(1, args.rounds + 1):
            results = {}
            for target in args.targets.split(","):
                results[target] = runners[target]()
                print(f"  done: {results[target].name}", file=sys.stderr)
            rounds.append(results)
            if args.rounds > 1:
                print(f"--- round {number} of {args.rounds}")
                report(results, args.size_mib)
        if args.rounds > 1:
            print(f"=== median of {args.rounds} rounds")
        report(medians(rounds), args.size_mib)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def medians(rounds: list[dict[str, Result]]) -> dict[str, Result]:
    """Each target's median seconds, CPU and memory over the rounds (each figure on its own)."""
    merged = {}
    for target, first in rounds[0].items():
        runs = [results[target] for results in rounds]
        merged[target] = Result(
            first.name,
            statistics.median(run.seconds for run in runs),
            first.size,
            int(statistics.median(run.rss_before for run in runs)),
            int(statistics.median(run.rss_peak for run in runs)),
            statistics.median(run.cpu for run in runs),
        )
    return merged


def report(results: dict[str, Result], size_mib: int) -> None:
    how = "one put_object" if MODE["single_put"] else "upload_file (8 MiB parts, 10 threads)"
    memory = "memory evened out before each upload" if MODE["warm"] else "memory as the previous target left it"
    if MODE["drop_caches"]:
        memory = "page cache emptied, " + memory
    print(f"boto3 {how} of {size_mib} MiB, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, {memory}")
    print(f"{'target':28} {'seconds':>8} {'MiB/s':>8} {'CPU s':>6} {'RSS before':>11} {'RSS peak':>9} {'growth':>8}")
    for result in results.values():
        rss = (
            f"{result.rss_before / MiB:10.0f}M {result.rss_peak / MiB:8.0f}M {(result.rss_peak - result.rss_before) / MiB:7.0f}M"
            if result.rss_peak
            else ""
        )
        print(f"{result.name:28} {result.seconds:8.2f} {result.mib_s:8.1f} {result.cpu:6.1f} {rss}")
    for result in results.values():
        print(f"{result.name}: {result.cpu / (result.size / 1024**3):.2f} CPU s per GiB")
    ours = results.get("ours")
    if ours:
        per_gib = ours.cpu / (ours.size / 1024**3)
        print(f"ours CPU: {per_gib:.2f} s per GiB (goal <= 3.5) {'ok' if per_gib <= 3.5 else 'ABOVE GOAL'}")
        for other, goal in (("stdlib", 0.5), ("moto", 1.5)):
            if other in results:
                ratio = ours.mib_s / results[other].mib_s
                verdict = "ok" if ratio >= goal else "BELOW GOAL"
                print(f"ours / {other}: {ratio:.2f}x (goal >= {goal}x) {verdict}")
        growth = (ours.rss_peak - ours.rss_before) / MiB
        print(f"ours RSS growth: {growth:.0f} MiB (goal < 128 MiB) {'ok' if growth < 128 else 'ABOVE GOAL'}")


if __name__ == "__main__":
    main()
