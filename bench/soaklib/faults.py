"""The faults a soak run injects, in turn, on a schedule: a server process killed with SIGKILL
(the supervisor restarts it), the run's Redis restarted (empty, as after a crash), every
database connection of the servers terminated, a client dropping an upload mid-body, and
the run's Redis hung (SIGSTOP) for a few seconds."""

from __future__ import annotations

import random
import socket
import ssl
import time
from urllib.parse import urlsplit

from bench.soaklib.workload import Upload, World

KINDS = ("kill -9 server", "restart redis", "pg_terminate_backend", "client disconnect mid-upload", "hang redis")
HANG_SECONDS = 3.0


def kill_server(world: World, n: int) -> str:
    server = world.stack.servers[n % len(world.stack.servers)]
    pid = server.proc.pid if server.proc else 0
    fault = world.rec.fault(KINDS[0], f":{server.port} pid {pid}")
    world.stack.supervisor.kill(server)
    time.sleep(1.5)  # the supervisor notices within 0.5 s and waits for the new process
    world.stack.supervisor.wait_all_up()
    fault.recovered = time.monotonic()
    return fault.detail


def restart_redis(world: World) -> str:
    fault = world.rec.fault(KINDS[1], f"port {world.stack.redis.port}")
    world.stack.restart_redis()
    fault.recovered = time.monotonic()
    return fault.detail


def hang_redis(world: World) -> str:
    """Redis stopped, connections open, nothing answering: every use times out (REDIS_TIMEOUT),
    live events published meanwhile are lost on the layer while the streams' subscriptions
    survive (unlike a restart), so the streams must find them in the event rows."""
    fault = world.rec.fault(KINDS[4], f"port {world.stack.redis.port}, {HANG_SECONDS:g} s")
    with world.stack.redis.hung():
        time.sleep(HANG_SECONDS)
    fault.recovered = time.monotonic()
    return fault.detail


def terminate_connections(world: World) -> str:
    fault = world.rec.fault(KINDS[2], "")
    fault.detail = f"{world.stack.terminate_backends()} connections"
    fault.recovered = time.monotonic()
    return fault.detail


def disconnect_mid_upload(world: World, rnd: random.Random) -> str:
    """PUT an object with a presigned URL over a raw TLS connection, send half the declared
    body and hang up. The object must never become visible (checked now and at the end)."""
    with world.lock:
        jobs = list(world.credentials.items())
    if not jobs:
        world.rec.note("disconnect fault skipped: no job credentials yet")
        return "skipped"
    job_id, creds = rnd.choice(jobs)
    key = f"checkpoints/interrupted-{rnd.randrange(10**6)}/model.safetensors"
    fault = world.rec.fault(KINDS[3], f"{job_id}/{key}")
    s3 = world.s3(creds)
    url = urlsplit(s3.generate_presigned_url("put_object", Params={"Bucket": creds.bucket, "Key": key}, ExpiresIn=300))
    size = 6 * 1024 * 1024
    context = ssl.create_default_context(cafile=str(world.stack.tls.ca))
    with (
        socket.create_connection((url.hostname, url.port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=url.hostname) as tls,
    ):
        head = (
            f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Content-Length: {size}\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        tls.sendall(head.encode())
        tls.sendall(b"\0" * (size // 2))
        time.sleep(0.5)
    # The abandoned object must not be visible, now or later.
    time.sleep(1)
    with world.lock:
        world.uploads.append(Upload(job_id, key, "", size, completed=False))
    try:
        s3.head_object(Bucket=creds.bucket, Key=key)
        world.rec.violation(f"a partial upload became visible: {job_id}/{key}")
    except s3.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
            raise
    fault.recovered = time.monotonic()
    return fault.detail


def injector(world: World, first_after: float, every: float, seed: int) -> None:
    rnd = random.Random(seed)
    if world.stop.wait(first_after):
        return
    n = 0
    while not world.stop.is_set():
        kind = KINDS[n % len(KINDS)]
        try:
            if kind == KINDS[0]:
                kill_server(world, n // len(KINDS))
            elif kind == KINDS[1]:
                restart_redis(world)
            elif kind == KINDS[2]:
                terminate_connections(world)
            elif kind == KINDS[3]:
                disconnect_mid_upload(world, rnd)
            else:
                hang_redis(world)
        except Exception as exc:
            world.rec.violation(f"fault {kind} could not be injected: {type(exc).__name__}: {exc}")
        n += 1
        if world.stop.wait(every):
            return
