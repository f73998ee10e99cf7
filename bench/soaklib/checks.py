"""The invariants a soak run checks at the end (docs/soak.md explains each). Each check adds
its violations to the recorder and returns a one-line summary."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import defaultdict

from bench.soaklib.record import Recorder
from bench.soaklib.workload import StreamReader, World
from tests.processes import ROOT

# A process of the run may not exceed this resident size (bench/serve_memory.py measured
# about 137 MiB under a light load; the Kubernetes limit in deploy/ is 512 MiB).
RSS_BOUND_MIB = 320
LOGIN_LIMIT, LOGIN_PERIOD = 5, 60.0
# Client-side times differ from the server's by the request's latency: a window this much
# shorter than the rule's period can only hold more than the limit if the limiter failed.
CLOCK_SLACK = 2.0
FORWARD = {"pending": 0, "uploading": 1, "queued": 2, "running": 3, "completed": 4, "failed": 4, "cancelled": 4}


def submissions(world: World) -> str:
    from providers.models import Job

    rec = world.rec
    accepted = {(s.user.pk, s.idempotency_key): s for s in world.submissions}
    for (owner, key), sub in accepted.items():
        found = list(Job.objects.filter(owner_id=owner, idempotency_key=key).values_list("id", flat=True))
        if found != [sub.job_id]:
            rec.violation(f"submission {key} of {sub.user.name}: jobs {found}, answered {sub.job_id}")
    total = Job.objects.count()
    if total != len(accepted):
        rec.violation(f"{total} jobs in the database for {len(accepted)} accepted submissions")
    stuck = list(Job.objects.exclude(status__in=("completed", "failed", "cancelled")).values_list("id", "status"))
    for job_id, status in stuck:
        rec.violation(f"job {job_id} still {status} at the end")
    failed = list(Job.objects.filter(status="failed").values_list("id", "error"))
    for job_id, error in failed:
        rec.violation(f"job {job_id} failed: {error[:200]}")
    retried = sum(1 for s in accepted.values() if s.retried)
    return f"{len(accepted)} accepted ({retried} retried with their key), {total} jobs, {len(stuck)} unfinished"


def webhooks(world: World) -> str:
    """Each webhook-id applied once (one `received`, the rest `duplicate`); each job's status
    changes a forward chain, audited once each, ending where its prediction ended."""
    from audit.models import AuditEntry
    from providers.models import Job

    rec = world.rec
    for delivery in world.deliveries.values():
        received = delivery.outcomes.count("received")
        others = set(delivery.outcomes) - {"received", "duplicate"}
        if received > 1 or others or not delivery.outcomes:
            rec.violation(f"webhook {delivery.msg_id} ({delivery.job_id}) answered {delivery.outcomes}")
    changes: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for target, details in (
        AuditEntry.objects.filter(event_type="job.status_changed")
        .order_by("sequence")
        .values_list("target_id", "details")
    ):
        changes[target].append((details["from"], details["to"]))
    replicate = {s.job_id for s in world.submissions if s.provider == "replicate"}
    for job_id, status in Job.objects.values_list("id", "status"):
        chain = changes.get(job_id, [])
        previous = "pending"
        for before, after in chain:
            if before != previous or FORWARD[after] <= FORWARD[before]:
                rec.violation(f"job {job_id}: status chain {chain} is not one forward path")
                break
            previous = after
        if chain and chain[-1][1] != status:
            rec.violation(f"job {job_id} is {status}, its audit trail ends at {chain[-1][1]}")
        if job_id in replicate and status != "completed":
            rec.violation(f"replicate job {job_id} ended {status}; its prediction succeeded")
    duplicates = sum(len(d.outcomes) - 1 for d in world.deliveries.values())
    return f"{len(world.deliveries)} webhook ids, {duplicates} repeated deliveries, {len(changes)} jobs' status chains"


def uploads(world: World) -> str:
    """Every completed object is there byte for byte, counted once on its job; no object of an
    interrupted upload is visible; buckets hold nothing else."""
    from providers.models import Job

    rec = world.rec
    by_job: dict[str, list] = defaultdict(list)
    for upload in world.uploads:
        by_job[upload.job_id].append(upload)
    for job_id, items in by_job.items():
        creds = world.credentials[job_id]
        s3 = world.s3(creds)
        listed = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=creds.bucket).get("Contents", [])}
        complete = [u for u in items if u.completed]
        for upload in items:
            if not upload.completed:
                if upload.key in listed:
                    rec.violation(f"interrupted upload {job_id}/{upload.key} is visible")
                continue
            body = s3.get_object(Bucket=creds.bucket, Key=upload.key)["Body"].read()
            if hashlib.sha256(body).hexdigest() != upload.sha256:
                rec.violation(f"{job_id}/{upload.key} differs from what was uploaded")
        extra = set(listed) - {u.key for u in complete}
        if extra:
            rec.violation(f"bucket {job_id} holds objects nobody completed: {sorted(extra)}")
        job = Job.objects.get(pk=job_id)
        if job.upload_objects != len(complete) or job.upload_bytes != sum(u.size for u in complete):
            rec.violation(
                f"job {job_id} counts {job.upload_objects} objects / {job.upload_bytes} bytes,"
                f" {len(complete)} / {sum(u.size for u in complete)} were uploaded"
            )
    done = sum(1 for u in world.uploads if u.completed)
    return f"{done} uploads verified, {len(world.uploads) - done} interrupted and invisible"


def streams(world: World, readers: list[StreamReader], floor: int) -> str:
    """Every event of a user's jobs (staff: of every job) recorded after the run began reached
    that user's stream, through its reconnects."""
    from providers.models import LiveEvent

    rec = world.rec
    out = []
    for reader in readers:
        rows = LiveEvent.objects.filter(pk__gt=floor)
        if not reader.user.staff:
            rows = rows.filter(owner_id=reader.user.pk)
        expected = dict(rows.values_list("id", "job_id"))
        missing = sorted(set(expected) - set(reader.seen))
        if missing:
            rec.violation(
                f"stream of {reader.user.name} missed {len(missing)} of {len(expected)} events, e.g. {missing[:10]}"
            )
            explain_missing(reader, missing[:5])
        out.append(f"{reader.user.name} {len(expected) - len(missing)}/{len(expected)} ({reader.connects} connects)")
    return "; ".join(out)


def explain_missing(reader: StreamReader, missing: list[int]) -> None:
    """For a missed event: when it was recorded, and what the stream did around then (its
    (re)connects with the Last-Event-ID sent, the events it got just before and after)."""
    from providers.models import LiveEvent

    for row in LiveEvent.objects.filter(pk__in=missing).order_by("id"):
        at = row.created_at.timestamp()
        near = sorted((i, t) for i, t in reader.received_at.items() if abs(t - at) < 15)
        opens = [(round(t - at, 2), last) for t, last in reader.opened if abs(t - at) < 60]
        print(
            f"  missed #{row.pk} {row.kind} {row.job_id}: stream (re)opened at {opens} s from it"
            f" (with Last-Event-ID); got around it: {[(i, round(t - at, 2)) for i, t in near]}",
            flush=True,
        )


def login_limit(world: World) -> str:
    """No address got more than 5 login attempts past the limiter in any 60 s, outside windows
    that span a Redis restart (the sliding windows live in Redis and start empty after it)."""
    rec = world.rec
    restarts = [f for f in rec.faults if f.kind == "restart redis"]
    admitted: dict[str, list[tuple[float, float]]] = defaultdict(list)
    refused = outage = 0
    for address, started, ended, status in world.logins:
        if status == 429:
            refused += 1
        elif status == 503:
            outage += 1
        elif status:
            admitted[address].append((started, ended))
    worst = 0
    for address, times in admitted.items():
        times.sort()
        for i, (start, _) in enumerate(times):
            window = [t for t in times[i:] if t[0] < start + LOGIN_PERIOD - CLOCK_SLACK]
            if any(f.started <= window[-1][1] and f.started >= start - 1 for f in restarts):
                continue
            worst = max(worst, len(window))
            if len(window) > LOGIN_LIMIT:
                rec.violation(f"login limit: {len(window)} attempts from {address} admitted within 60 s")
                break
    total = sum(len(t) for t in admitted.values())
    return f"{total} admitted (at most {worst} per address and minute), {refused} refused (429), {outage} fail-closed (503)"


def audit_chain(world: World) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", "audit_verify"], cwd=ROOT, env=world.stack.env, capture_output=True, text=True
    )
    if result.returncode != 0:
        world.rec.violation(f"audit_verify failed: {result.stdout[-500:]} {result.stderr[-500:]}")
    return "audit_verify passed" if result.returncode == 0 else "audit_verify FAILED"


def server_errors(rec: Recorder) -> str:
    inside, outside = rec.server_errors()
    for r in outside[:20]:
        rec.violation(f"{r.endpoint} answered {r.status or 'nothing'} outside any fault window")
    if len(outside) > 20:
        rec.violation(f"... and {len(outside) - 20} more 5xx/unanswered outside fault windows")
    return f"{len(inside)} 5xx/unanswered inside fault windows, {len(outside)} outside"


def memory(world: World) -> str:
    peaks = [max(s.peak_rss_kib) / 1024 for s in world.stack.servers if s.peak_rss_kib]
    for server in world.stack.servers:
        for n, peak in enumerate(server.peak_rss_kib):
            if peak / 1024 > RSS_BOUND_MIB:
                world.rec.violation(f"server :{server.port} (incarnation {n + 1}) reached {peak / 1024:.0f} MiB")
    return f"peak RSS {max(peaks):.0f} MiB (bound {RSS_BOUND_MIB} MiB)"


def logs(world: World) -> str:
    """What the servers logged: tracebacks and deadlocks are reported (a deadlock is a violation)."""
    tracebacks = deadlocks = 0
    for server in world.stack.servers:
        text = server.log.read_text(errors="replace")
        tracebacks += text.count("Traceback (most recent call last)")
        deadlocks += text.count("deadlock detected")
    if deadlocks:
        world.rec.violation(f"the servers logged {deadlocks} database deadlocks")
    return f"{tracebacks} tracebacks and {deadlocks} deadlocks in the server logs"
