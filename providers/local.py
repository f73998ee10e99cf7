"""The `local` provider: runs a job's command as a subprocess on this machine.

Each job gets $SIMPLETUNER_LOCAL_JOBS_DIR/<job id>/ holding config.json, dataloader.json,
output.log, progress.json (if the command writes it) and exit.json. The command runs under
providers/runner.py, the leader of a new session: it outlives a server restart, a cancel
signals its whole process group (SIGTERM, then SIGKILL after SIMPLETUNER_LOCAL_CANCEL_GRACE),
and it leaves exit.json behind so any server process can finish the job. The process gets
the environment a cloud job gets (job id, webhook URL and secret, S3 upload credentials)
plus only the server variables in SIMPLETUNER_LOCAL_ENV_PASSTHROUGH.

Local jobs belong to the machine that started them: with several hosts sharing a database,
only the host named in the job's runner record checks or stops its process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from rest_framework.exceptions import PermissionDenied, ValidationError

from cloudops.health import Component, elapsed_ms
from cloudops.jsonbody import InvalidJSON, parse_json
from cloudops.structured_logging import get_logger
from providers.base import (
    DeliveryUnverifiable,
    HardwareOption,
    Phase,
    RemoteState,
    SigningSecret,
    Submitted,
    run_seconds_of,
)
from providers.credentials import job_upload_bearer, job_upload_credentials, local_webhook_secret, webhook_url
from providers.errors import ProviderConfigError
from providers.models import Job, JobStatus, ProviderConfig
from providers.webhooks.payloads import progress_of

logger = get_logger("simpletuner.cloud.providers.local")

RUNNER = Path(__file__).with_name("runner.py")
EXAMPLE_TRAINER = Path(__file__).with_name("example_trainer.py")
ERROR_TAIL_CHARS = 2000
MAX_STATE_FILE_BYTES = 64 * 1024
# Limits for the bundled trainer's settings, so a typo cannot run for a year.
TRAINER_LIMITS = {"max_train_steps": (1, 1_000_000), "step_seconds": (0, 3600), "checkpoint_size_mb": (0, 10_240)}


def job_dir(job_id: str) -> Path:
    return settings.SIMPLETUNER_LOCAL_JOBS_DIR / job_id


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    return text[text.rindex(")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def runner_alive(runner: dict[str, Any]) -> bool:
    """Whether the runner process recorded on a job still exists (same pid AND start time,
    so a recycled pid is not mistaken for it). Zombies count as gone."""
    pid = runner.get("pid")
    if not pid:
        return False
    fields = _stat_fields(pid)
    if fields is None:
        if Path("/proc/self/stat").exists():
            return False
        try:  # no /proc (macOS): existence only
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if fields[0] == "Z":
        return False
    return runner.get("start_ticks") in (None, int(fields[19]))


def _signal(runner: dict[str, Any], signum: int, *, group: bool) -> bool:
    """Signal the runner (which relays SIGTERM once to its group) or its whole group."""
    if not runner_alive(runner):
        return False
    try:
        if group:
            os.killpg(runner["pid"], signum)
        else:
            os.kill(runner["pid"], signum)
    except ProcessLookupError:
        return False
    return True


def orphans(runner: dict[str, Any]) -> list[int]:
    """Live processes of the runner's group working inside the job directory.

    A runner killed before it could set up its signal relay leaves its command running;
    the group id and the working directory together prove those processes are this job's.
    """
    pgid, job_dir = runner.get("pid"), runner.get("dir")
    if not pgid or not job_dir or not Path("/proc/self/stat").exists():
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or fields[0] == "Z" or int(fields[2]) != pgid:
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == job_dir or cwd.startswith(job_dir.rstrip(os.sep) + os.sep):
            found.append(int(entry.name))
    return found


def read_tail(path: Path, max_bytes: int) -> tuple[str, bool]:
    """The last `max_bytes` of a file as text, and whether earlier content was cut."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except FileNotFoundError:
        return "", False
    return data.decode("utf-8", errors="replace"), size > max_bytes


def _read_json(path: Path) -> dict[str, Any] | None:
    """A file the job's process group can write (progress.json, exit.json), read as untrusted
    input: at most MAX_STATE_FILE_BYTES, within the JSON limits, an object; else None."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_STATE_FILE_BYTES + 1)
        value = parse_json(data) if len(data) <= MAX_STATE_FILE_BYTES else None
    except (OSError, InvalidJSON):
        return None
    return value if isinstance(value, dict) else None


class LocalProvider:
    name = "local"
    display_name = "Local (this machine)"
    enabled_by_default = True
    default_hardware = "local"
    logs_after_end = True  # output.log stays in the job's directory
    remote = False

    def hardware_defaults(self) -> dict[str, HardwareOption]:
        return {"local": HardwareOption(id="local", label="This machine", price_per_second=0.0)}

    def validate_submission(self, *, config: dict[str, Any], trusted: bool) -> None:
        command = config.get("command")
        if command is None:
            self._validate_trainer_settings(config)
            return
        policy = settings.SIMPLETUNER_LOCAL_COMMANDS
        if policy == "none" or (policy == "staff" and not trusted):
            who = "nobody" if policy == "none" else "staff users who may change providers only"
            raise PermissionDenied(f"config.command: custom commands on the local provider are allowed for {who}.")
        valid = isinstance(command, list) and 0 < len(command) <= 1000
        if not valid or not all(isinstance(arg, str) and arg and len(arg) <= 4096 for arg in command):
            raise ValidationError({"config": ["command: must be a non-empty list of non-empty strings (an argv)."]})

    def _validate_trainer_settings(self, config: dict[str, Any]) -> None:
        for key, (low, high) in TRAINER_LIMITS.items():
            value = config.get(key, config.get(f"--{key}"))
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise ValidationError({"config": [f"{key}: must be a number from {low} to {high}."]})

    # --- Running ---------------------------------------------------------------------------

    def environment(self, *, job: Job, provider_config: ProviderConfig, directory: Path) -> dict[str, str]:
        env = {k: os.environ[k] for k in settings.SIMPLETUNER_LOCAL_ENV_PASSTHROUGH if k in os.environ}
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "SIMPLETUNER_JOB_ID": job.id,
                "SIMPLETUNER_JOB_DIR": str(directory),
                "SIMPLETUNER_JOB_CONFIG": str(directory / "config.json"),
                "SIMPLETUNER_DATALOADER_CONFIG": str(directory / "dataloader.json"),
                "SIMPLETUNER_OUTPUT_DIR": str(directory / "output"),
                "SIMPLETUNER_WEBHOOK_URL": webhook_url(provider_config),
                "SIMPLETUNER_WEBHOOK_SECRET": local_webhook_secret(job.id),
            }
        )
        if job.dataset:
            from providers.datasets import dataset_location

            env["SIMPLETUNER_DATASET"] = dataset_location(job.dataset)
        if provider_config.s3_endpoint_enabled:
            creds = job_upload_credentials(job, provider_config)
            env.update(
                {
                    "AWS_ACCESS_KEY_ID": creds.access_key_id,
                    "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
                    "AWS_ENDPOINT_URL_S3": creds.endpoint_url,
                    "AWS_ENDPOINT_URL": creds.endpoint_url,
                    "AWS_DEFAULT_REGION": creds.region,
                    "AWS_REGION": creds.region,
                    "SIMPLETUNER_S3_ENDPOINT": creds.endpoint_url,
                    "SIMPLETUNER_S3_BUCKET": creds.bucket,
                    "SIMPLETUNER_UPLOAD_TOKEN": job_upload_bearer(job.upload_token),
                }
            )
        return env

    def submit(self, *, job: Job, provider_config: ProviderConfig, phase: Phase) -> Submitted:
        try:
            return self._start(job=job, provider_config=provider_config)
        except OSError as exc:  # e.g. the jobs directory is not writable: the operator must act
            raise ProviderConfigError(f"cannot start the local job: {exc}", provider=self.name) from exc

    def _start(self, *, job: Job, provider_config: ProviderConfig) -> Submitted:
        directory = job_dir(job.id)
        # exist_ok: a start taken over after its starter died may find the directory made.
        directory.mkdir(parents=True, mode=0o700, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(job.config, indent=2))
        (directory / "dataloader.json").write_text(json.dumps(job.dataloader_config, indent=2))
        # -I (isolated): the script's own directory must not shadow the standard library
        # (this package has http.py, selectors.py, ...), and PYTHON* variables must not apply.
        argv = job.config.get("command") or [sys.executable, "-I", str(EXAMPLE_TRAINER)]
        env = self.environment(job=job, provider_config=provider_config, directory=directory)
        process = subprocess.Popen(
            [sys.executable, "-I", str(RUNNER), str(directory), "--", *argv],
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        runner = {
            "pid": process.pid,
            "start_ticks": process_start_ticks(process.pid),
            "host": socket.gethostname(),
            "dir": str(directory),
        }
        # Recorded before anyone watches it, so a command that exits at once is still found.
        Job.objects.filter(pk=job.pk).update(runner=runner, external_id=str(process.pid))
        job.runner, job.external_id = runner, str(process.pid)
        logger.info("local job started", extra={"job_id": job.id, "pid": process.pid})
        # The caller has providers.sync watch it: reaping the runner the moment it exits.
        return Submitted(RemoteState(status=JobStatus.RUNNING, external_id=str(process.pid)), wait=process.wait)

    def _is_mine(self, job: Job) -> bool:
        return job.runner.get("host") in (None, socket.gethostname())

    def poll(self, *, job: Job, provider_config: ProviderConfig) -> RemoteState:
        if not job.runner or not self._is_mine(job):
            return RemoteState(status=None)
        directory = Path(job.runner["dir"])
        progress = progress_of(_read_json(directory / "progress.json"))
        if runner_alive(job.runner) and not (directory / "exit.json").exists():
            return RemoteState(status=JobStatus.RUNNING, progress=progress)
        # The runner writes exit.json before it exits, so a dead runner's status is final now.
        exit_status = _read_json(directory / "exit.json")
        logs, _ = read_tail(directory / "output.log", settings.SIMPLETUNER_JOB_LOG_MAX_BYTES)
        if exit_status is None and job.cancel_requested_at is not None:
            # Our SIGTERM reached the runner before it could relay it (it was just starting), or
            # the group ignored it and was killed: no exit status. It ran until the cancel.
            started = job.started_at or job.created_at
            ran = (job.cancel_requested_at - started).total_seconds()
            return RemoteState(
                status=JobStatus.CANCELLED, logs=logs, progress=progress, run_seconds=run_seconds_of(ran)
            )
        if exit_status is None:
            return RemoteState(
                status=JobStatus.FAILED,
                error="The local process is gone and left no exit status "
                "(was the server or the machine restarted while it ran?).",
                logs=logs,
                progress=progress,
            )
        return self._finished(exit_status, logs, progress, cancel_requested=job.cancel_requested_at is not None)

    def _finished(
        self, exit_status: dict[str, Any], logs: str, progress: dict[str, Any], *, cancel_requested: bool
    ) -> RemoteState:
        code = exit_status.get("returncode")
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        run_seconds = _run_seconds(exit_status)
        if code == 0:
            return RemoteState(status=JobStatus.COMPLETED, logs=logs, run_seconds=run_seconds, progress=progress)
        if cancel_requested:
            # The exit our SIGTERM caused: whoever records it first (this watcher or job_cancel)
            # records a cancellation, not a failure.
            return RemoteState(status=JobStatus.CANCELLED, logs=logs, run_seconds=run_seconds, progress=progress)
        if code is None:
            reason = "The command left an unreadable exit status."
        elif code < 0:
            reason = f"The command was killed by {_signal_name(-code)}."
        else:
            reason = f"The command exited with status {code}."
        tail = logs[-ERROR_TAIL_CHARS:].strip()
        return RemoteState(
            status=JobStatus.FAILED,
            error=f"{reason}\n--- last output ---\n{tail}" if tail else reason,
            logs=logs,
            run_seconds=run_seconds,
            progress=progress,
        )

    def cancel(self, *, job: Job, provider_config: ProviderConfig) -> RemoteState | None:
        runner = dict(job.runner)
        if runner and self._is_mine(job) and _signal(runner, signal.SIGTERM, group=False):
            timer = threading.Timer(settings.SIMPLETUNER_LOCAL_CANCEL_GRACE, kill_if_alive, args=(runner,))
            timer.daemon = True
            timer.start()
        return None

    def ended(self, *, job: Job, provider_config: ProviderConfig) -> None:
        """A job reported terminal while its process still runs (a job may report `completed`
        before it exits, or report falsely) gets SIMPLETUNER_LOCAL_EXIT_GRACE seconds to exit
        by itself, for its final uploads; then it is stopped as a cancel stops it, so no
        process outlives its job (whose owner could no longer cancel it). The timer lives in
        this server process: a restart within the grace period leaves the process running."""
        runner = dict(job.runner)
        if runner and self._is_mine(job) and runner_alive(runner):
            timer = threading.Timer(settings.SIMPLETUNER_LOCAL_EXIT_GRACE, stop_if_alive, args=(runner,))
            timer.daemon = True
            timer.start()

    def signing_secret(self, *, provider_config: ProviderConfig, job_id: str, refresh: bool) -> SigningSecret:
        """The per-job secret of the job the delivery names (a job knows only its own)."""
        if not job_id:
            raise DeliveryUnverifiable("a local job's delivery must name its job (job_id)")
        return SigningSecret(local_webhook_secret(job_id))

    def logs(self, *, job: Job, provider_config: ProviderConfig) -> str | None:
        if not job.runner or not self._is_mine(job):
            return None
        text, _ = read_tail(Path(job.runner["dir"]) / "output.log", settings.SIMPLETUNER_JOB_LOG_MAX_BYTES)
        return text

    def health(self, *, provider_config: ProviderConfig) -> Component:
        started = time.perf_counter()
        root = settings.SIMPLETUNER_LOCAL_JOBS_DIR
        try:
            root.mkdir(parents=True, exist_ok=True)
            writable = os.access(root, os.W_OK | os.X_OK)
        except OSError:
            writable = False
        latency = elapsed_ms(started)
        if not writable:
            return Component("provider:local", "degraded", f"Job directory {root} is not writable", latency)
        return Component("provider:local", "healthy", "Local jobs can run", latency)


def stop_if_alive(runner: dict[str, Any]) -> bool:
    """SIGTERM a runner that outlived its job, and SIGKILL its group after the cancel grace."""
    if not _signal(runner, signal.SIGTERM, group=False):
        return False
    logger.warning("a local job outlived its end; stopping it", extra={"pid": runner.get("pid")})
    timer = threading.Timer(settings.SIMPLETUNER_LOCAL_CANCEL_GRACE, kill_if_alive, args=(runner,))
    timer.daemon = True
    timer.start()
    return True


def _run_seconds(exit_status: dict[str, Any]) -> float | None:
    """The run time in an exit status: `duration`, else `finished_at - started_at` (exit
    files of runners before every exit path wrote a duration)."""
    if "duration" in exit_status:
        return run_seconds_of(exit_status["duration"])
    started, finished = exit_status.get("started_at"), exit_status.get("finished_at")
    if isinstance(started, bool) or isinstance(finished, bool):
        return None
    if isinstance(started, int | float) and isinstance(finished, int | float):
        return run_seconds_of(finished - started)
    return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def kill_if_alive(runner: dict[str, Any]) -> bool:
    """SIGKILL the job's process group if it outlived the cancel grace period (also when the
    runner itself is gone but left its command running)."""
    killed = _signal(runner, signal.SIGKILL, group=True)
    if not killed and orphans(runner):
        try:
            os.killpg(runner["pid"], signal.SIGKILL)
            killed = True
        except ProcessLookupError:
            pass
    if killed:
        logger.warning("local job ignored SIGTERM; killed", extra={"pid": runner.get("pid")})
    return killed
