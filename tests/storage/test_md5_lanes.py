"""storage/md5.py and its lane kernel (storage/native/md5lanes.c) against hashlib's MD5.

The kernel is called directly through ctypes for every lane count (one lane runs the scalar
code, more the SIMD code the CPU picks), then `Md5` is fuzzed with Hypothesis over update sizes
and buffer kinds, driven from many threads at once (so that the lane thread batches several
streams into one kernel call) and from a forked child. Under CI=true the library must be built;
elsewhere the kernel tests skip when it is not.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import random
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from storage import md5
from tests.processes import in_forked_child

KiB = 1024
MiB = 1024 * KiB
UNDER_CI = os.environ.get("CI") == "true"


@pytest.fixture
def kernel() -> ctypes.CDLL:
    """The loaded lane library: missing under CI is a failure, elsewhere a skip."""
    if md5._LIB is None:
        if UNDER_CI:
            pytest.fail(f"{md5.LIBRARY} did not load under CI=true (storage/native/build.py must build it)")
        pytest.skip(f"{md5.LIBRARY} is not built (no C compiler?): run `python3 storage/native/build.py`")
    return md5._LIB


def test_the_library_is_there_where_it_must_be() -> None:
    if UNDER_CI:
        assert md5.available(), f"CI=true but {md5.LIBRARY} did not load"
    # A library that exists must load (a stale or foreign build would silently cost hashlib's CPU).
    assert md5.available() == md5.LIBRARY.exists()
    assert isinstance(md5.new(), md5.Md5 if md5.available() else md5.PooledMd5)


# --- the C kernel, straight through ctypes -------------------------------------------------


def _padded(message: bytes) -> bytes:
    """`message` with RFC 1321's padding: 0x80, zeros to 56 mod 64, the bit length (LE 64)."""
    return message + b"\x80" + bytes((55 - len(message)) % 64) + struct.pack("<Q", 8 * len(message) % 2**64)


class _Buffers:
    """Writable copies of messages whose starts sit `skew` bytes past an 8-byte boundary."""

    def __init__(self, messages: list[bytes], skews: list[int]) -> None:
        self.keep: list[bytearray] = []
        self.addresses: list[int] = []
        for message, skew in zip(messages, skews, strict=True):
            raw = bytearray(len(message) + 128)
            base = ctypes.addressof(ctypes.c_char.from_buffer(raw))
            start = -base % 64 + skew  # 64-aligned, then `skew` bytes on
            raw[start : start + len(message)] = message
            assert len(raw) == len(message) + 128  # not grown (moved) by the copy
            self.keep.append(raw)
            self.addresses.append(base + start)
            assert (base + start) % 64 == skew


def _digests(state: ctypes.Array[ctypes.c_uint32], lanes: int) -> list[bytes]:
    return [struct.pack("<4I", *state[4 * lane : 4 * lane + 4]) for lane in range(lanes)]


# md5_lanes takes the AVX-512 path where the CPU has it; md5_lanes_portable never does, so the
# code other CPUs run is tested here too.
ENTRIES = ["md5_lanes", "md5_lanes_portable"]


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("lanes", range(1, 17))
@pytest.mark.parametrize("unaligned", [False, True], ids=["aligned", "odd-addresses"])
def test_kernel_hashes_each_lane_as_hashlib_does(kernel, entry, lanes, unaligned) -> None:
    rng = random.Random(lanes * 2 + unaligned)
    for length in (0, 1, 55, 56, 63, 64, 119, 120, 1000, 4096 + 17, 70_000):
        # Different messages of one padded length: the same block count in every lane.
        messages = [rng.randbytes(length) for _ in range(lanes)]
        padded = [_padded(m) for m in messages]
        blocks = len(padded[0]) // 64
        skews = [(2 * lane + 1) % 64 if unaligned else 0 for lane in range(lanes)]
        buffers = _Buffers(padded, skews)
        ptrs = (ctypes.c_void_p * lanes)(*buffers.addresses)
        # A state array longer than the lanes: the kernel must leave the rest alone.
        state = (ctypes.c_uint32 * (4 * 16 + 4))(*(md5.INITIAL_STATE * lanes))
        sentinel = list(state[4 * lanes :])
        state[4 * lanes :] = [0xDEADBEEF] * len(sentinel)
        assert getattr(kernel, entry)(state, ptrs, lanes, blocks) == 0
        assert _digests(state, lanes) == [hashlib.md5(m).digest() for m in messages], (lanes, length)
        assert list(state[4 * lanes :]) == [0xDEADBEEF] * len(sentinel)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("lanes", [1, 2, 7, 16])
def test_kernel_carries_each_lanes_state_across_calls(kernel, entry, lanes) -> None:
    rng = random.Random(lanes)
    messages = [rng.randbytes(64 * 37 + 5) for _ in range(lanes)]
    padded = [_padded(m) for m in messages]
    blocks = len(padded[0]) // 64
    buffers = _Buffers(padded, [lane % 3 for lane in range(lanes)])
    state = (ctypes.c_uint32 * (4 * lanes))(*(md5.INITIAL_STATE * lanes))
    done = 0
    for step in (0, 1, 5, 16, blocks):  # a call of no blocks changes nothing
        step = min(step, blocks - done)
        ptrs = (ctypes.c_void_p * lanes)(*(address + 64 * done for address in buffers.addresses))
        assert getattr(kernel, entry)(state, ptrs, lanes, step) == 0
        done += step
    assert done == blocks
    assert _digests(state, lanes) == [hashlib.md5(m).digest() for m in messages]


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("lanes", [0, 17, 1000])
def test_kernel_refuses_a_lane_count_it_does_not_have(kernel, entry, lanes) -> None:
    block = bytearray(_padded(b"abc"))
    address = ctypes.addressof(ctypes.c_char.from_buffer(block))
    ptrs = (ctypes.c_void_p * 17)(*([address] * 17))
    state = (ctypes.c_uint32 * (4 * 17))(*(md5.INITIAL_STATE * 17))
    before = list(state)
    assert getattr(kernel, entry)(state, ptrs, lanes, 1) == -1
    assert list(state) == before
    assert kernel.md5_lanes_width() == md5.WIDTH == 16


# --- Md5 against hashlib -------------------------------------------------------------------

INL = md5.INLINE_BYTES
SIZES = st.one_of(
    st.sampled_from(
        [0, 1, 63, 64, 65, 127, 128, INL - 65, INL - 64, INL - 1, INL, INL + 1, INL + 63, INL + 64, INL + 65]
    ),
    st.integers(min_value=0, max_value=3 * INL),
    st.integers(min_value=200 * KiB, max_value=700 * KiB),
)
KINDS = ["bytes", "bytearray", "memoryview", "readonly-memoryview", "odd-slice", "uint32-memoryview"]


def _as(kind: str, data: bytes) -> Any:
    """`data` as the buffer kind the update is given in."""
    if kind == "bytes":
        return data  # read-only
    if kind == "bytearray":
        return bytearray(data)
    if kind == "memoryview":
        return memoryview(bytearray(data))
    if kind == "readonly-memoryview":
        return memoryview(data)
    if kind == "odd-slice":  # starts 1 byte into its buffer
        return memoryview(bytearray(b"?" + data + b"?"))[1 : 1 + len(data)]
    if kind == "uint32-memoryview" and len(data) % 4 == 0:  # items of 4 bytes: Md5 hashes bytes
        return memoryview(bytearray(data)).cast("I")
    return bytearray(data)


@hsettings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    updates=st.lists(st.tuples(SIZES, st.sampled_from(KINDS), st.booleans()), max_size=8),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_md5_matches_hashlib_for_any_updates(kernel, updates, seed) -> None:
    rng = random.Random(seed)
    ours, theirs = md5.Md5(), hashlib.md5()
    for size, kind, peek in updates:
        data = rng.randbytes(size)
        ours.submit(_as(kind, data)).result()
        theirs.update(data)
        if peek:  # a digest mid-stream, as hashlib's, changes nothing after it
            assert ours.digest() == theirs.digest()
    assert ours.digest() == theirs.digest()
    assert ours.digest() == theirs.digest()  # repeatable
    assert ours.hexdigest() == theirs.hexdigest()


def test_md5_of_nothing_and_of_one_big_update(kernel) -> None:
    assert md5.Md5().hexdigest() == hashlib.md5(b"").hexdigest()
    data = random.Random(1).randbytes(5 * MiB + 1000)
    ours = md5.Md5()
    ours.submit(memoryview(bytearray(data))).result()
    assert ours.digest() == hashlib.md5(data).digest()


def test_md5_does_not_keep_reading_the_callers_buffer_after_its_future(kernel) -> None:
    """Once an update is done its buffer is the caller's again (body.py reuses its batches)."""
    rng = random.Random(2)
    buffer = bytearray(3 * md5.INLINE_BYTES + 10)
    ours, theirs = md5.Md5(), hashlib.md5()
    for _ in range(4):
        buffer[:] = rng.randbytes(len(buffer))
        theirs.update(buffer)
        ours.submit(buffer).result()
    buffer[:] = bytes(len(buffer))
    assert ours.digest() == theirs.digest()


# --- many streams at once: the lane thread batches them ------------------------------------


@pytest.fixture
def lanes_per_call(kernel, monkeypatch) -> list[int]:
    """The `lanes` of every kernel call (a recording wrapper around the real C function)."""
    seen: list[int] = []
    real = kernel.md5_lanes

    def recording(state: Any, ptrs: Any, lanes: int, blocks: int) -> int:
        seen.append(lanes)
        return real(state, ptrs, lanes, blocks)

    monkeypatch.setattr(kernel, "md5_lanes", recording)
    return seen


def test_concurrent_streams_share_kernel_calls_and_each_gets_its_own_digest(lanes_per_call) -> None:
    streams = 12
    messages = [random.Random(100 + n).randbytes(3 * MiB + 77 * n) for n in range(streams)]
    digests: dict[int, bytes] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(streams)

    def upload(n: int) -> None:
        try:
            ours = md5.Md5()
            view = memoryview(bytearray(messages[n]))
            start.wait()
            for at in range(0, len(view), 256 * KiB + 13 * n):  # unaligned updates, above INLINE
                ours.submit(view[at : at + 256 * KiB + 13 * n]).result()
            digests[n] = ours.digest()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    assert digests == {n: hashlib.md5(m).digest() for n, m in enumerate(messages)}
    # The lane thread gave the kernel more than one message per call at least once.
    assert max(lanes_per_call) >= 2, sorted(set(lanes_per_call))


# --- the one-update-at-a-time rule and futures that cannot be cancelled --------------------


@pytest.fixture
def gil_kept() -> Iterator[None]:
    """The test's thread keeps the GIL between its statements (no 5 ms switches), so an update of
    many MiB is still being hashed when the next line runs."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    yield
    sys.setswitchinterval(before)


def _while_pending(check: Callable[[md5.Md5, Any], None]) -> None:
    """Run `check(hasher, future)` on an update the lane thread has not finished, and the digest
    must still be hashlib's; a try whose future was done already is retried."""
    data = bytearray(random.Random(3).randbytes(16 * MiB))
    for _ in range(20):
        ours = md5.Md5()
        future = ours.submit(data)
        if future.done():
            continue
        check(ours, future)
        future.result()
        assert ours.digest() == hashlib.md5(data).digest()
        return
    pytest.fail("every update was done before the test could look at it")


def test_md5_takes_one_update_at_a_time(kernel, gil_kept) -> None:
    def second_update(ours: md5.Md5, future: Any) -> None:
        with pytest.raises(RuntimeError, match="one update at a time"):
            ours.submit(bytearray(b"more"))

    _while_pending(second_update)


def test_an_update_on_the_lanes_cannot_be_cancelled(kernel, gil_kept) -> None:
    def cancel(ours: md5.Md5, future: Any) -> None:
        assert future.cancel() is False
        assert not future.cancelled()

    _while_pending(cancel)


# --- the hashlib fallback ------------------------------------------------------------------


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes=st.lists(st.one_of(st.sampled_from([0, 1, 63, 64, 65, INL]), st.integers(0, 300 * KiB)), max_size=6),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_pooled_md5_matches_hashlib(sizes, seed) -> None:
    rng = random.Random(seed)
    ours, theirs = md5.PooledMd5(), hashlib.md5()
    for size in sizes:
        data = rng.randbytes(size)
        ours.submit(bytearray(data)).result()
        theirs.update(data)
    assert ours.digest() == theirs.digest()
    assert ours.hexdigest() == theirs.hexdigest()


# --- a forked child ------------------------------------------------------------------------


def test_a_forked_child_hashes_on_its_own_lane_thread(kernel) -> None:
    data = bytearray(random.Random(4).randbytes(2 * MiB + 3))
    parent = md5.Md5()
    parent.submit(data).result()  # the parent's lane thread is running
    assert md5._THREAD is not None and md5._THREAD.is_alive()
    assert parent.digest() == hashlib.md5(data).digest()

    def hash_in_the_child() -> bytes:
        child = md5.Md5()
        for at in range(0, len(data), 512 * KiB):
            child.submit(memoryview(data)[at : at + 512 * KiB]).result(timeout=30)
        return child.digest()

    # A child without a lane thread of its own would never answer.
    answer = in_forked_child(hash_in_the_child)
    assert answer == hashlib.md5(data).digest()
