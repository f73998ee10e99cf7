"""A cancelled upload must not return while its write worker still uses the descriptor.

storage/services.py closes the descriptor (and may release a part's slot for a retry) as soon as
receive_to_file returns; a worker still inside storage/direct.py would then run F_SETFL and pwrite
on a closed or reused descriptor number (seen: a socket that reused it turned blocking).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from pathlib import Path

import pytest

from storage.body import WRITE_BATCH, BodySpec, RequestBodyStream, receive_to_file


def _direct_writes_possible(fd: int) -> bool:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT)
    except OSError:
        return False
    fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    return True


@pytest.mark.parametrize("cancellations", [1, 3], ids=["once", "again-while-settling"])
def test_a_cancelled_upload_returns_only_after_its_writes_ended(tmp_path: Path, settings, cancellations) -> None:
    settings.SIMPLETUNER_S3_DIRECT_WRITES = True
    fd = os.open(tmp_path / "part", os.O_WRONLY | os.O_CREAT, 0o600)
    if not _direct_writes_possible(fd):
        os.close(fd)
        pytest.skip(f"{tmp_path} is on a file system that refuses O_DIRECT: nothing to catch mid-write")
    chunk = os.urandom(WRITE_BATCH)
    sent = 0

    async def receive() -> dict:
        nonlocal sent
        sent += 1
        if sent <= 3:
            return {"type": "http.request", "body": chunk, "more_body": True}
        await asyncio.Event().wait()  # the client stalls; never reached before the cancel
        return {}

    async def main() -> bool:
        task = asyncio.ensure_future(receive_to_file(RequestBodyStream(receive), BodySpec(length=8 * WRITE_BATCH), fd))
        # Cancel (a client disconnect) while the worker is inside a direct write; a second and
        # third cancellation arrive while receive_to_file waits for that write to end.
        give_up = time.monotonic() + 60  # a guard against a hang, not a timing assertion
        while not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            assert time.monotonic() < give_up, "no direct write was ever seen in progress"
            await asyncio.sleep(0)
        for _ in range(cancellations):
            task.cancel()
            await asyncio.sleep(0)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # receive_to_file is over: the caller now closes fd. Nothing may still be using it.
        return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)

    try:
        still_direct = asyncio.run(main())
    finally:
        os.close(fd)
    assert not still_direct, "receive_to_file returned while a worker was still in a direct write on fd"
