"""A small stand-in for SimpleTuner's trainer, for demos and tests of the `local` provider.

It reads the job config ($SIMPLETUNER_JOB_CONFIG): `max_train_steps` (default 10),
`step_seconds` (default 0.2), `checkpoint_size_mb` (default 1) and, for demos of the failure
path, `fail_at_step`. It logs one line per step, writes progress.json in the job directory,
writes a checkpoint, and uploads it with boto3 when the S3 variables are set. It reports
through signed Standard Webhooks to $SIMPLETUNER_WEBHOOK_URL in SimpleTuner's event shapes
(`training.status`, `lifecycle.stage`, `training.checkpoint`). Webhook and upload failures
are logged and tolerated: they never fail the training.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import random
import signal
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any


def log(message: str) -> None:
    print(f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)


def setting(config: dict[str, Any], key: str, default: float) -> float:
    """SimpleTuner configs spell keys with or without the leading `--`."""
    value = config.get(key, config.get(f"--{key}", default))
    return float(value)


class Webhooks:
    """Signed Standard Webhooks deliveries: webhook-id, webhook-timestamp, webhook-signature."""

    def __init__(self, url: str, secret: str, job_id: str) -> None:
        self.url = url
        self.key = base64.b64decode(secret.removeprefix("whsec_")) if secret else b""
        self.job_id = job_id
        self.failures = 0

    def send(self, event: dict[str, Any]) -> None:
        if not self.url or not self.key:
            return
        event = {"job_id": self.job_id, "timestamp": datetime.now(UTC).isoformat(), **event}
        body = json.dumps(event).encode()
        msg_id, stamp = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
        digest = hmac.new(self.key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": stamp,
            "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        }
        try:
            urllib.request.urlopen(urllib.request.Request(self.url, data=body, headers=headers), timeout=5).close()
        except Exception as exc:  # a webhook must never stop the training
            self.failures += 1
            if self.failures == 1:
                log(f"webhook delivery failed (further failures not logged): {exc}")


def status_event(status: str, message: str = "", **progress: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "training.status", "title": status.title(), "data": {"status": status}}
    if message:
        event["message"] = message
    if progress:
        event["progress"] = progress
    return event


def write_progress(job_dir: Path, step: int, total: int, loss: float) -> None:
    data = {"current": step, "total": total, "percent": round(step * 100 / total, 1), "loss": round(loss, 4)}
    tmp = job_dir / ".progress.json.tmp"
    tmp.write_text(json.dumps(data))
    os.replace(tmp, job_dir / "progress.json")


def write_checkpoint(output_dir: Path, step: int, size_mb: float) -> Path:
    target = output_dir / f"checkpoint-{step}" / "model.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    remaining = int(size_mb * 1024 * 1024)
    with target.open("wb") as handle:
        while remaining > 0:
            chunk = os.urandom(min(remaining, 1024 * 1024))
            handle.write(chunk)
            remaining -= len(chunk)
    return target


def upload(path: Path, key: str) -> None:
    """Upload to the job's bucket over the server's S3 endpoint, if it was given one."""
    bucket = os.environ.get("SIMPLETUNER_S3_BUCKET")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("SIMPLETUNER_S3_ENDPOINT")
    if not bucket or not endpoint or not os.environ.get("AWS_ACCESS_KEY_ID"):
        log("no S3 endpoint configured; the checkpoint stays in the job directory")
        return
    try:
        import boto3
        from botocore.config import Config

        config = Config(
            s3={"addressing_style": "path"}, retries={"max_attempts": 2}, connect_timeout=10, read_timeout=60
        )
        boto3.client("s3", endpoint_url=endpoint, config=config).upload_file(str(path), bucket, key)
    except Exception as exc:  # the server's storage endpoint may be unreachable or absent
        log(f"upload of {key} to s3://{bucket} failed: {type(exc).__name__}: {exc}")
        return
    log(f"uploaded {key} to s3://{bucket}")


def main() -> int:
    job_id = os.environ.get("SIMPLETUNER_JOB_ID", "local")
    job_dir = Path(os.environ.get("SIMPLETUNER_JOB_DIR", "."))
    config_path = os.environ.get("SIMPLETUNER_JOB_CONFIG")
    config = json.loads(Path(config_path).read_text()) if config_path else {}
    steps = max(1, int(setting(config, "max_train_steps", 10)))
    step_seconds = max(0.0, setting(config, "step_seconds", 0.2))
    size_mb = max(0.0, setting(config, "checkpoint_size_mb", 1))
    fail_at = int(setting(config, "fail_at_step", 0))
    hooks = Webhooks(
        os.environ.get("SIMPLETUNER_WEBHOOK_URL", ""), os.environ.get("SIMPLETUNER_WEBHOOK_SECRET", ""), job_id
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        signal.signal(signum, signal.SIG_IGN)  # stopping already; a repeat must not kill us mid-exit
        log(f"received {signal.Signals(signum).name}, stopping")
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    log(f"job {job_id}: training for {steps} steps ({step_seconds}s each)")
    hooks.send(status_event("running", f"Training started: {steps} steps"))
    for step in range(1, steps + 1):
        time.sleep(step_seconds)
        loss = 0.5 * math.exp(-step / max(steps / 3, 1)) + random.uniform(0, 0.01)
        log(f"step {step}/{steps} loss={loss:.4f}")
        write_progress(job_dir, step, steps, loss)
        progress = {"label": "Training", "current": step, "total": steps, "percent": round(step * 100 / steps, 1)}
        hooks.send({"type": "lifecycle.stage", "stage": {"key": "training", "status": "running", "progress": progress}})
        if step == fail_at:
            log(f"error: simulated failure at step {step} (fail_at_step)")
            hooks.send(status_event("failed", f"Simulated failure at step {step}"))
            return 1
    checkpoint = write_checkpoint(job_dir / "output", steps, size_mb)
    log(f"wrote checkpoint {checkpoint.relative_to(job_dir)} ({size_mb} MB)")
    key = f"checkpoint-{steps}/{checkpoint.name}"
    upload(checkpoint, key)
    hooks.send({"type": "training.checkpoint", "checkpoint": {"path": key, "label": f"step {steps}", "is_final": True}})
    # The last line is logged before the status says so: whoever reads the logs on seeing
    # "completed" must find the whole run (a reader was seen racing the line on a fast day).
    log("training complete")
    hooks.send(status_event("completed", "Training finished", current=steps, total=steps, percent=100.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
