"""Supervisor of one local job: `python runner.py JOB_DIR -- COMMAND...`.

Started by the local provider as the leader of a new session, so the job survives a server
restart. A cancel sends SIGTERM to this process, which passes it once to its whole process
group; the SIGKILL after the grace period goes to the group directly. It runs COMMAND with stdout and
stderr appended to JOB_DIR/output.log, and when COMMAND ends writes JOB_DIR/exit.json
(atomically): any server process can then complete or fail the job, even one started after
this job's server died. Standard library only: it must not import Django.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType


def _write_exit(job_dir: Path, returncode: int, started: float) -> None:
    """exit.json with the wall time from this process's start to the command's end (the
    job's run time: recorded even when the job was reported ended or cancelled before)."""
    finished = time.time()
    status = {"returncode": returncode, "started_at": started, "finished_at": finished, "duration": finished - started}
    tmp = job_dir / ".exit.json.tmp"
    tmp.write_text(json.dumps(status))
    os.replace(tmp, job_dir / "exit.json")


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: runner.py JOB_DIR -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    job_dir, command = Path(argv[0]), argv[2:]
    started = time.time()
    forwarded: set[int] = set()
    pending: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        # A cancel signals this process; pass it once to the whole group (the command and
        # anything it started). Our own copy of that signal, or a repeat, is ignored, so
        # the command never receives the same signal twice. Before the command exists there
        # is nothing to relay: the signal is remembered and the command never starts.
        if signum in forwarded:
            return
        forwarded.add(signum)
        if child is None:
            pending.append(signum)
        else:
            os.killpg(os.getpgid(0), signum)

    # Installed before the command starts, so a cancel can never orphan it.
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    with (job_dir / "output.log").open("ab", buffering=0) as log:
        if pending:
            _write_exit(job_dir, 128 + pending[0], started)
            return 0
        try:
            child = subprocess.Popen(command, cwd=job_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        except OSError as exc:
            log.write(f"cannot start {command[0]!r}: {exc}\n".encode())
            _write_exit(job_dir, 127, started)
            return 0
        if pending:  # signalled while the command was starting: relay it now, once
            os.killpg(os.getpgid(0), pending[0])
        returncode = child.wait()
    _write_exit(job_dir, returncode, started)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
