"""The stack a soak run drives, all on loopback: a scratch PostgreSQL database, a Redis server
of its own, P `manage.py serve` processes kept up by a supervisor, the kit's nginx site in
front of them, and a Replicate stand-in.

What the tests already have is reused, not copied: tests/deploy/kit.py renders and runs the
nginx site, tests/redis/server.py starts (and restarts) a private Redis, tests/server/live.py
waits for and stops server processes, tests/fakes/replicate.py is the Replicate stand-in.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.deploy import kit
from tests.fakes.replicate import FakeReplicate
from tests.processes import ROOT
from tests.redis.server import RedisServer, redis_server, restart_on_same_port
from tests.server.live import free_port, process_status, stop_group, wait_until_up

POSTGRES_ADMIN_URL = os.environ.get("SOAK_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def wait_for_nginx(timeout: float = 600) -> str:
    """nginx's path; it may still be installing (apt) when the run starts."""
    deadline = time.monotonic() + timeout
    while True:
        found = shutil.which("nginx") or (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx")
        if found:
            return str(found)
        if time.monotonic() > deadline:
            raise SystemExit("nginx is not installed (apt-get install nginx)")
        print("waiting for nginx to be installed ...", flush=True)
        time.sleep(10)


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh `soak_<random>` database on the local PostgreSQL; dropped afterwards."""
    name = f"soak_{secrets.token_hex(4)}"
    admin = POSTGRES_ADMIN_URL.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Server:
    """One `manage.py serve` process slot: its port and its current incarnation."""

    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    incarnations: int = 0
    # Peak RSS (KiB) per incarnation, sampled by the run.
    peak_rss_kib: list[int] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Supervisor:
    """Starts the server processes and restarts any that exits (a `kill -9` fault), as
    systemd's Restart=always would; samples their memory."""

    def __init__(self, servers: list[Server], env: dict[str, str]) -> None:
        self.servers, self.env = servers, env
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.restarts = 0
        self.thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start_one(self, server: Server) -> None:
        argv = [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(server.port)]
        with server.log.open("ab") as out:
            proc = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        server.proc = proc
        server.incarnations += 1
        server.peak_rss_kib.append(0)
        wait_until_up(server.base + "/api/cloud/health/live", proc, timeout=120)

    def start(self) -> None:
        for server in self.servers:
            self.start_one(server)
        self.thread.start()

    def _watch(self) -> None:
        while not self.stopping.wait(0.5):
            for server in self.servers:
                with self.lock:
                    if self.stopping.is_set():
                        return
                    if server.proc is not None and server.proc.poll() is not None:
                        self.restarts += 1
                        try:
                            self.start_one(server)
                        except AssertionError as exc:  # the restart failed: try again next round
                            print(f"supervisor: restarting :{server.port} failed: {exc}", flush=True)
                self.sample(server)

    def sample(self, server: Server) -> None:
        if server.proc is None or server.proc.poll() is not None:
            return
        try:
            rss = process_status(server.proc.pid)["rss_kib"]
        except (FileNotFoundError, ProcessLookupError, KeyError):
            return
        server.peak_rss_kib[-1] = max(server.peak_rss_kib[-1], rss)

    def kill(self, server: Server) -> None:
        """`kill -9` the server process (the supervisor brings it back)."""
        with self.lock:
            if server.proc is not None and server.proc.poll() is None:
                os.kill(server.proc.pid, signal.SIGKILL)
                server.proc.wait()

    def wait_all_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(s.proc is not None and s.proc.poll() is None for s in self.servers) and not self.lock.locked():
                return
            time.sleep(0.2)
        raise RuntimeError("servers did not come back")

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            for server in self.servers:
                if server.proc is not None:
                    stop_group(server.proc)
        self.thread.join(timeout=10)


def nginx_site(tls: kit.Tls, *, https_port: int, http_port: int, ports: list[int]) -> str:
    """The kit's site on loopback (kit.site_on_loopback), its upstream every server process."""
    one = kit.site_on_loopback(tls, https_port=https_port, http_port=http_port, upstream=ports[0])
    lines = "".join(f"    server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;\n" for port in ports)
    return kit.substitute(one, rf"(?m)^\s*server 127\.0\.0\.1:{ports[0]} [^;]*;\n", lines)


@dataclass
class Stack:
    root: Path
    env: dict[str, str]
    database_url: str
    redis: RedisServer
    servers: list[Server]
    supervisor: Supervisor
    fake: FakeReplicate
    tls: kit.Tls
    url: str  # nginx, https
    nginx_log: Path

    def restart_redis(self) -> None:
        restart_on_same_port(self.redis, self.root / "redis")

    def server_backend_pids(self) -> list[int]:
        """Database backends of the soak database other than our own connection."""
        admin = self.database_url.replace("postgres://", "postgresql://", 1)
        with psycopg.connect(admin, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        return [row[0] for row in rows]

    def terminate_backends(self) -> int:
        """pg_terminate_backend on every connection the server processes hold; returns how many."""
        admin = self.database_url.replace("postgres://", "postgresql://", 1)
        with psycopg.connect(admin, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        return sum(1 for row in rows if row[0])


def server_env(root: Path, database_url: str, redis_url: str, fake: FakeReplicate, public_url: str, ca: Path) -> dict:
    """What every server process gets: one database, one Redis, one home (outputs and keys
    shared, as on one host), the same three keys, and the stand-in's address."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PORT")}
    env.update(
        DJANGO_SETTINGS_MODULE="cloudops.settings",
        SIMPLETUNER_HOME=str(root / "home"),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        HOST="127.0.0.1",
        CONN_MAX_AGE="60",
        SECRET_KEY=secrets.token_urlsafe(50),
        SIMPLETUNER_SERVER_KEY=secrets.token_urlsafe(32),
        SIMPLETUNER_AUDIT_KEY=secrets.token_urlsafe(32),
        SIMPLETUNER_PUBLIC_URL=public_url,
        SIMPLETUNER_LOG_FORMAT="json",
        SIMPLETUNER_LOG_LEVEL="WARNING",
        REPLICATE_API_TOKEN=fake.token,
        REPLICATE_API_BASE_URL=fake.base_url,
        SIMPLETUNER_HTTP_BACKOFF="0.05",
        # Shorter than production so a run of minutes sees many passes of each loop.
        SIMPLETUNER_SYNC_INTERVAL="5",
        SIMPLETUNER_METRICS_FLUSH_SECONDS="1",
        SIMPLETUNER_EVENTS_HEARTBEAT="3",
        # Every event of the run stays in the buffer, so the end can compare streams with it.
        SIMPLETUNER_EVENTS_BUFFER="100000",
        # Local jobs reach nginx over HTTPS with the run's test CA.
        SSL_CERT_FILE=str(ca),
        AWS_CA_BUNDLE=str(ca),
        SIMPLETUNER_LOCAL_ENV_PASSTHROUGH="PATH,HOME,LANG,LC_ALL,TZ,TMPDIR,SSL_CERT_FILE,AWS_CA_BUNDLE",
    )
    return env


@contextmanager
def running_stack(processes: int, root: Path) -> Iterator[Stack]:
    nginx = wait_for_nginx()
    with ExitStack() as stack:
        database_url = stack.enter_context(scratch_database())
        (root / "redis").mkdir(parents=True, exist_ok=True)
        redis = stack.enter_context(redis_server(root / "redis"))
        fake = FakeReplicate().start()
        stack.callback(fake.stop)
        tls = kit.make_tls(root)
        https_port, http_port = free_port(), free_port()
        public = f"https://127.0.0.1:{https_port}"
        env = server_env(root, database_url, redis.url, fake, public, tls.ca)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        servers = [Server(free_port(), root / f"server-{i + 1}.log") for i in range(processes)]
        supervisor = Supervisor(servers, env)
        stack.callback(supervisor.stop)
        supervisor.start()
        conf = kit.write_nginx_conf(
            root / "nginx", nginx_site(tls, https_port=https_port, http_port=http_port, ports=[s.port for s in servers])
        )
        url = stack.enter_context(kit.running_nginx(nginx, conf, https_port))
        yield Stack(root, env, database_url, redis, servers, supervisor, fake, tls, url, root / "nginx" / "error.log")
