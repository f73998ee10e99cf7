"""The clients of a soak run, each a thread talking to nginx over HTTPS as real clients would:
submitters (idempotency keys, retries of the same key), a Replicate stand-in driving each
prediction through signed webhooks (duplicates, out-of-order deliveries) and uploading a
checkpoint to the job's bucket with the job's own credentials (boto3 multipart), event-stream
readers that reconnect with Last-Event-ID, API readers, a metrics scraper and a password
guesser that runs into the login rate limit."""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3
import httpx
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from bench.soaklib.record import Recorder
from bench.soaklib.stack import Stack

MIB = 1024 * 1024
PART = 5 * MIB  # S3's smallest part: checkpoints of 5-9 MiB are two parts
GIVE_UP_SECONDS = 180.0


@dataclass
class User:
    name: str
    pk: int
    key: str
    staff: bool = False

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class Submission:
    user: User
    idempotency_key: str
    provider: str
    job_id: str
    retried: bool = False


@dataclass
class Upload:
    job_id: str
    key: str
    sha256: str
    size: int
    completed: bool  # False: the client disconnected mid-body (the object must not exist)


@dataclass
class Delivery:
    msg_id: str
    job_id: str
    prediction_status: str
    outcomes: list[str] = field(default_factory=list)  # the answers' "status": received, duplicate, ...


@dataclass
class Credentials:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str


class World:
    """What the clients share: the stack, the recorder, the users and what was accepted."""

    def __init__(self, stack: Stack, rec: Recorder, users: list[User], staff: User, victim: str) -> None:
        self.stack, self.rec, self.users, self.staff, self.victim = stack, rec, users, staff, victim
        self.stop = threading.Event()  # stop generating new work
        self.lock = threading.Lock()
        self.submissions: list[Submission] = []
        self.replicate_jobs: queue.Queue[Submission] = queue.Queue()
        self.drivers_busy = 0
        self.uploads: list[Upload] = []
        self.deliveries: dict[str, Delivery] = {}
        self.credentials: dict[str, Credentials] = {}
        self.logins: list[tuple[str, float, float, int]] = []  # ip, started, ended, status

    def client(self, timeout: float | httpx.Timeout = 30) -> httpx.Client:
        return httpx.Client(base_url=self.stack.url, verify=str(self.stack.tls.ca), timeout=timeout)

    def call(self, client: httpx.Client, label: str, method: str, url: str, **kw: Any) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = client.request(method, url, **kw)
        except httpx.HTTPError:
            self.rec.request(label, 0, started)
            return None
        self.rec.request(label, response.status_code, started)
        return response

    def s3(self, creds: Credentials) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=creds.endpoint,
            aws_access_key_id=creds.access_key,
            aws_secret_access_key=creds.secret_key,
            region_name="us-east-1",
            verify=str(self.stack.tls.ca),
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 8, "mode": "standard"}),
        )


def ip(pool: str, n: int) -> dict[str, str]:
    """A client address in a documentation network; nginx appends its peer (trusted) after it."""
    return {"X-Forwarded-For": f"{pool}.{n % 250 + 1}"}


def pause(world: World, seconds: float) -> None:
    world.stop.wait(seconds * random.uniform(0.7, 1.3))


# --- Submissions -------------------------------------------------------------------------------------


def submit(world: World, client: httpx.Client, user: User, body: dict, key: str, address: dict) -> dict | None:
    """POST until the submission is accepted (201, or 200 for the same key), retrying the same
    key through 5xx answers and lost connections as a careful client does."""
    headers = {**user.auth, **address, "Idempotency-Key": key}
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while time.monotonic() < deadline:
        r = world.call(
            client, "POST /api/cloud/jobs/submit", "POST", "/api/cloud/jobs/submit", json=body, headers=headers
        )
        if r is not None and r.status_code in (200, 201):
            return {"status": r.status_code, **r.json()}
        if r is not None and r.status_code == 429:
            time.sleep(min(float(r.headers.get("Retry-After", "1")), 5))
            continue
        if r is not None and r.status_code < 500:
            world.rec.violation(f"submission {key} refused with {r.status_code}: {r.text[:300]}")
            return None
        time.sleep(1)
    world.rec.violation(f"submission {key} not accepted within {GIVE_UP_SECONDS:.0f}s")
    return None


def submit_twice_at_once(world: World, user: User, body: dict, key: str, address: dict) -> dict | None:
    """The same submission from two connections at the same moment (a client that timed out
    and retried while the first request was still being served): one job, answered to both,
    created once (at most one 201)."""
    answers: list[dict | None] = [None, None]

    def one(i: int) -> None:
        with world.client() as client:
            answers[i] = submit(world, client, user, body, key, address)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if answers[0] is None or answers[1] is None:
        return None
    # Both 200 is possible when a fault lost the answer of the request that created the job.
    if answers[0]["job_id"] != answers[1]["job_id"] or [a["status"] for a in answers].count(201) > 1:
        world.rec.violation(f"two simultaneous submissions of {key} answered {answers}")
    return {**answers[0], "twice": True}


def submitter(world: World, user: User, every: float, local_share: float, seed: int) -> None:
    rnd = random.Random(seed)
    with world.client() as client:
        n = 0
        while not world.stop.is_set():
            n += 1
            provider = "local" if rnd.random() < local_share else "replicate"
            config: dict[str, Any] = {"max_train_steps": 4, "learning_rate": 1e-4}
            if provider == "local":
                config.update(step_seconds=0.5, checkpoint_size_mb=1)
            body = {"provider": provider, "config": config, "name": f"soak-{user.name}-{n}"}
            key, address = str(uuid.uuid4()), ip("198.51.100", rnd.randrange(1000))
            if rnd.random() < 0.15:
                first = submit_twice_at_once(world, user, body, key, address)
            else:
                first = submit(world, client, user, body, key, address)
            if first is None:
                continue
            sub = Submission(user, key, provider, first["job_id"], retried=first.get("twice", False))
            if rnd.random() < 0.3:  # the client lost the answer and sends the same request again
                sub.retried = True
                again = submit(world, client, user, body, key, ip("198.51.100", rnd.randrange(1000)))
                if again is not None and (again["job_id"] != sub.job_id or not again.get("idempotent_hit")):
                    world.rec.violation(f"retry of {key} answered {again['job_id']} (first {sub.job_id})")
            with world.lock:
                world.submissions.append(sub)
            if provider == "replicate":
                world.replicate_jobs.put(sub)
            pause(world, every)


# --- The Replicate stand-in: webhooks and the job's uploads --------------------------------------------


def prediction_of(world: World, job_id: str) -> dict | None:
    fake = world.stack.fake
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with fake.server.lock:
            for prediction in fake.predictions.values():
                if prediction["input"].get("s3_bucket") == job_id:
                    return prediction
        time.sleep(0.2)
    return None


def deliver(
    world: World, client: httpx.Client, job_id: str, snapshot: dict, address: dict, msg_id: str | None = None
) -> str:
    """POST a signed webhook (Replicate's format) until it gets a 200; returns the msg id."""
    fake = world.stack.fake
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    body = json.dumps(snapshot).encode()
    headers = {**fake.sign(body, msg_id=msg_id, timestamp=int(time.time())), **address}
    with world.lock:
        delivery = world.deliveries.setdefault(msg_id, Delivery(msg_id, job_id, snapshot["status"]))
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while time.monotonic() < deadline:
        r = world.call(
            client, "POST /api/webhooks/replicate", "POST", "/api/webhooks/replicate", content=body, headers=headers
        )
        if r is not None and r.status_code == 200:
            with world.lock:
                delivery.outcomes.append(r.json().get("status", "?"))
            return msg_id
        if r is not None and r.status_code not in (429, 503) and r.status_code < 500:
            world.rec.violation(f"webhook {msg_id} refused with {r.status_code}: {r.text[:300]}")
            return msg_id
        time.sleep(0.5)  # Replicate retries failed deliveries
    world.rec.violation(f"webhook {msg_id} not accepted within {GIVE_UP_SECONDS:.0f}s")
    return msg_id


def upload_checkpoint(world: World, creds: Credentials, job_id: str, rnd: random.Random) -> None:
    """What the trainer does at a checkpoint: a multipart upload to its bucket with its own
    credentials; then the object is downloaded and compared."""
    data = os.urandom(rnd.randrange(PART + MIB, PART + 4 * MIB))
    digest = hashlib.sha256(data).hexdigest()
    key = f"checkpoints/step-{rnd.randrange(10**6)}/model.safetensors"
    s3 = world.s3(creds)
    transfer = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=2)
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while True:
        started = time.monotonic()
        try:
            s3.upload_fileobj(io.BytesIO(data), creds.bucket, key, Config=transfer)
            world.rec.request("S3 multipart upload (boto3)", 200, started)
            break
        except Exception as exc:  # boto3 retried already; a fault can outlast its retries
            world.rec.request("S3 multipart upload (boto3)", 0, started)
            if time.monotonic() > deadline:
                world.rec.violation(f"upload {job_id}/{key} failed for good: {exc}")
                return
            time.sleep(1)
    with world.lock:
        world.uploads.append(Upload(job_id, key, digest, len(data), completed=True))
        world.rec.bytes_up += len(data)
    download_and_check(world, s3, creds.bucket, key, digest)


def download_and_check(world: World, s3: Any, bucket: str, key: str, digest: str) -> None:
    started = time.monotonic()
    try:
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        world.rec.request("S3 download (boto3)", 0, started)
        world.rec.note("download retried after " + type(exc).__name__)
        time.sleep(1)
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    world.rec.request("S3 download (boto3)", 200, started)
    with world.lock:
        world.rec.bytes_down += len(got)
    if hashlib.sha256(got).hexdigest() != digest:
        world.rec.violation(f"download of {bucket}/{key} differs from what was uploaded")


def drive_prediction(world: World, client: httpx.Client, sub: Submission, rnd: random.Random) -> None:
    """starting -> processing (logs, a checkpoint) -> succeeded, with duplicates of some
    deliveries (same webhook-id) and a stale `processing` delivered after the end."""
    fake = world.stack.fake
    prediction = prediction_of(world, sub.job_id)
    if prediction is None:
        world.rec.violation(f"job {sub.job_id} has no prediction at the Replicate stand-in")
        return
    pid, inp = prediction["id"], prediction["input"]
    creds = Credentials(inp["s3_endpoint_url"], inp["s3_bucket"], inp["s3_access_key"], inp["s3_secret_key"])
    with world.lock:
        world.credentials[sub.job_id] = creds
    address = ip("203.0.113", rnd.randrange(8))  # Replicate's few egress addresses

    def step(status: str, **changes: Any) -> dict:
        snapshot = fake.advance(pid, status, **changes)
        msg = deliver(world, client, sub.job_id, snapshot, address)
        if rnd.random() < 0.25:  # Replicate delivered it twice
            deliver(world, client, sub.job_id, snapshot, address, msg_id=msg)
        time.sleep(rnd.uniform(0.2, 1.5))
        return snapshot

    if rnd.random() < 0.5:
        step("starting")
    running = step("processing", logs="step 1/4\n")
    if rnd.random() < 0.5:
        upload_checkpoint(world, creds, sub.job_id, rnd)
    step("processing", logs="step 1/4\nstep 3/4\n")
    step(
        "succeeded",
        logs="step 1/4\nstep 3/4\ndone\n",
        output=["https://example.invalid/lora.safetensors"],
        predict_time=12.5,
    )
    if rnd.random() < 0.4:  # a late `processing` (new webhook-id) arrives after the end
        deliver(world, client, sub.job_id, running, address)


def replicate_driver(world: World, seed: int) -> None:
    rnd = random.Random(seed)
    with world.client() as client:
        while True:
            try:
                sub = world.replicate_jobs.get(timeout=0.5)
            except queue.Empty:
                if world.stop.is_set():
                    return
                continue
            with world.lock:
                world.drivers_busy += 1
            try:
                drive_prediction(world, client, sub, rnd)
            except Exception as exc:
                world.rec.violation(f"driving {sub.job_id} failed: {type(exc).__name__}: {exc}")
            finally:
                with world.lock:
                    world.drivers_busy -= 1


# --- Event streams -----------------------------------------------------------------------------------


class StreamReader(threading.Thread):
    """One user's event stream, reconnecting with Last-Event-ID when it drops and, to exercise
    resumes, on its own every 30-90 s. Remembers every event id it got and its job."""

    def __init__(self, world: World, user: User, seed: int) -> None:
        super().__init__(name=f"stream-{user.name}", daemon=True)
        self.world, self.user, self.rnd = world, user, random.Random(seed)
        self.seen: dict[int, str] = {}
        self.received_at: dict[int, float] = {}  # time.time() the event arrived (first time)
        self.opened: list[tuple[float, str | None]] = []  # (time.time(), Last-Event-ID sent)
        self.last_id: str | None = None
        self.connects = 0
        self.finish = threading.Event()
        self.connected = threading.Event()

    def run(self) -> None:
        try:
            with self.world.client(timeout=httpx.Timeout(30, read=30)) as client:
                while not self.finish.is_set():
                    try:
                        self._once(client)
                    except httpx.HTTPError:
                        self.world.rec.note("event stream dropped (reconnected)")
                        self.finish.wait(0.5)
        except Exception as exc:
            self.world.rec.violation(f"stream reader {self.user.name} crashed: {type(exc).__name__}: {exc}")

    def _once(self, client: httpx.Client) -> None:
        headers = dict(self.user.auth)
        if self.last_id is not None:
            headers["Last-Event-ID"] = self.last_id
        started = time.monotonic()
        with client.stream("GET", "/api/events/stream", headers=headers) as response:
            self.world.rec.request("GET /api/events/stream (open)", response.status_code, started)
            if response.status_code != 200:
                if response.status_code < 500 and response.status_code != 429:
                    self.world.rec.violation(f"stream of {self.user.name} refused with {response.status_code}")
                self.finish.wait(1)
                return
            self.connects += 1
            self.opened.append((time.time(), self.last_id))
            self.connected.set()
            until = time.monotonic() + self.rnd.uniform(30, 90)
            event, event_id, data = "message", None, ""
            for line in response.iter_lines():
                if line == "":
                    if event_id is not None:
                        self._got(event, event_id, data)
                    elif event in ("reset", "dropped", "unauthorized", "reconnect"):
                        self._control(event)
                    event, event_id, data = "message", None, ""
                    if self.finish.is_set() or time.monotonic() > until:
                        return
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    event = value
                elif name == "id":
                    event_id = value
                elif name == "data":
                    data = value
            self.world.rec.note("event stream ended by the server (reconnected)")

    def _got(self, event: str, event_id: str, data: str) -> None:
        self.seen[int(event_id)] = json.loads(data).get("job_id", "")
        self.received_at.setdefault(int(event_id), time.time())
        self.last_id = event_id  # what a browser's EventSource sends back

    def _control(self, event: str) -> None:
        if event == "reset":
            self.world.rec.violation(f"stream of {self.user.name}: events after Last-Event-ID were pruned")
        else:
            self.world.rec.note(f"event stream control event {event}")


# --- Reads, scrapes, password guessing ------------------------------------------------------------------


def reader(world: World, user: User, every: float, seed: int) -> None:
    rnd = random.Random(seed)
    with world.client() as client:
        while not world.stop.is_set():
            address = ip("192.0.2", rnd.randrange(1000))
            headers = {**user.auth, **address}
            world.call(client, "GET /api/cloud/jobs", "GET", "/api/cloud/jobs?limit=20", headers=headers)
            with world.lock:
                mine = [s.job_id for s in world.submissions if s.user is user]
            if mine:
                job = rnd.choice(mine)
                r = world.call(client, "GET /api/cloud/jobs/{id}", "GET", f"/api/cloud/jobs/{job}", headers=headers)
                if r is not None and r.status_code == 404:
                    world.rec.violation(f"accepted job {job} answered 404")
            world.call(client, "GET /api/users/me", "GET", "/api/users/me", headers=headers)
            world.call(client, "GET /api/cloud/health", "GET", "/api/cloud/health", headers=address)
            pause(world, every)


def scraper(world: World, every: float) -> None:
    with world.client() as client:
        while not world.stop.is_set():
            r = world.call(client, "GET /api/cloud/metrics/prometheus", "GET", "/api/cloud/metrics/prometheus")
            if r is not None and r.status_code == 200 and "simpletuner_jobs_total" not in r.text:
                world.rec.violation("a metrics scrape had no simpletuner_jobs_total")
            pause(world, every)


def password_guesser(world: World, every: float, seed: int) -> None:
    """Wrong passwords for one user from one address at a time (a new one every 75 s), faster
    than the login rule (5 a minute per address) admits."""
    rnd = random.Random(seed)
    with world.client() as client:
        n, switched, address = 0, time.monotonic(), f"192.0.2.{rnd.randrange(200, 250)}"
        while not world.stop.is_set():
            if time.monotonic() - switched > 75:
                n, switched = n + 1, time.monotonic()
                address = f"100.64.{n}.{rnd.randrange(1, 250)}"
            started = time.monotonic()
            r = world.call(
                client,
                "POST /api/auth/login",
                "POST",
                "/api/auth/login",
                json={"username": world.victim, "password": f"guess-{rnd.random()}"},
                headers={"X-Forwarded-For": address},
            )
            with world.lock:
                world.logins.append((address, started, time.monotonic(), r.status_code if r is not None else 0))
            pause(world, every)
