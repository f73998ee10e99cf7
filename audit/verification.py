"""Verifying the audit chain: the API, the command, the admin and pruning call `audit_verify`.

Entries are read in keyset batches (`sequence > last ORDER BY sequence LIMIT n`) rather than
one cursor, because MySQL drivers buffer whole result sets: memory stays flat at a million
entries on every database. Nothing is locked, so appends go on while a verification runs;
entries appended after it started are simply not part of it.

Failure reasons:
    edited     an entry's fields or MAC no longer match its MAC
    reordered  an entry's content sits at another sequence (sequences swapped)
    missing    an entry inside the chain was deleted
    truncated  the entries at the end of the chain, up to the signed head, were deleted
    forged     an entry exists past the signed head (added without the key)
    bad_head   the head checkpoint was altered, removed or names the wrong last MAC
    wrong_key  the head was signed with another key than the configured one
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from django.db.models import Max

from audit.chain import ENTRY_FIELDS, AuditKey, HeadState, audit_key, entry_mac, macs_equal
from audit.models import AuditEntry, AuditVerification
from audit.selectors import head_state
from cloudops import notify
from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.audit.verification")

BATCH_SIZE = 2000
KEEP_RESULTS = 100
_ROW_FIELDS = (*ENTRY_FIELDS, "mac")


class AuditRangeError(ValueError):
    """A requested range outside the chain; `parameter` names the offending argument."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    reason: str | None = None
    first_bad_sequence: int | None = None
    message: str = "The audit chain verifies."
    # The range covered, and whether it is the whole retained chain.
    from_sequence: int | None = None
    to_sequence: int | None = None
    full: bool = True
    # Entries whose MAC was checked; entries in the range at or before the anchor (unchained).
    checked: int = 0
    unverified: int = 0
    head: dict[str, Any] | None = None
    duration_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Broken(Exception):
    def __init__(self, reason: str, sequence: int | None, message: str) -> None:
        super().__init__(message)
        self.reason, self.sequence, self.message = reason, sequence, message


def audit_verify(
    *,
    from_sequence: int | None = None,
    to_sequence: int | None = None,
    trigger: str = "api",
    key: AuditKey | None = None,
    record: bool = True,
) -> VerifyResult:
    """Verify the chain, or the range `from_sequence`..`to_sequence` of it.

    Raises AuditRangeError for a range outside the retained chain, AuditKeyUnavailable
    when no key can be read. A range ending before the last entry checks the head's
    signature and the entries in the range (chained to the MAC stored in the entry before
    it); tail checks (truncation, entries past the head) run when the range reaches the end.
    """
    started = time.perf_counter()
    key = key or audit_key()
    for attempt in range(3):
        head = head_state()
        try:
            result = _verify(key, head, from_sequence, to_sequence)
        except _Broken as broken:
            # A prune or re-anchor that moved the start of the chain while we read it makes
            # rows vanish under us: start again (a bounded number of times).
            if attempt < 2 and broken.reason in ("missing", "truncated") and _start_moved(head):
                continue
            result = VerifyResult(
                ok=False,
                reason=broken.reason,
                first_bad_sequence=broken.sequence,
                message=broken.message,
                from_sequence=from_sequence,
                to_sequence=to_sequence,
                full=from_sequence is None and to_sequence is None,
            )
        break
    result = replace(result, head=head.as_dict() if head else None, duration_ms=_ms_since(started))
    _log(result, trigger)
    if record:
        _record(result, trigger)
    return result


def _verify(key: AuditKey, head: HeadState | None, lo_req: int | None, hi_req: int | None) -> VerifyResult:
    if head is None:
        # Entries first, then the head again: the first append commits both together.
        if AuditEntry.objects.exists() and head_state() is None:
            raise _Broken("bad_head", None, "The head checkpoint is missing but entries exist: it was deleted.")
        head = HeadState()
    _check_head_signature(key, head)
    first, last = head.pruned_through + 1, head.last_sequence
    lo, hi = _bounds(lo_req, hi_req, first, last)
    start = max(lo, head.anchor_sequence + 1)
    unverified = max(0, min(hi, head.anchor_sequence) - lo + 1)
    checked, prev = 0, head.anchor_mac
    if start <= hi:
        prev = head.anchor_mac if start == head.anchor_sequence + 1 else _mac_before(start)
        checked, prev = _walk(key, head, start, hi, prev)
    full = lo == first and hi == last
    if hi == last:
        _check_tail(head, prev)
    return VerifyResult(
        ok=True, from_sequence=lo if lo <= hi else None, to_sequence=hi if lo <= hi else None,
        full=full, checked=checked, unverified=unverified,
    )  # fmt: skip


def _check_head_signature(key: AuditKey, head: HeadState) -> None:
    if head.is_genesis:
        # A blank head is only ever visible before the first entry commits (the first
        # append writes both together): with entries present it was reset.
        if AuditEntry.objects.exists() and (head_state() or head).is_genesis:
            raise _Broken("bad_head", None, "The head checkpoint was reset to blank while entries exist.")
        return
    if head.verifies(key):
        return
    if head.key_id != key.key_id:
        raise _Broken(
            "wrong_key",
            None,
            f"The head checkpoint does not verify with the configured key (id {key.key_id}); it names key id "
            f"{head.key_id or '(none)'}. Either SIMPLETUNER_AUDIT_KEY is not the key that signed this chain, "
            "or the checkpoint was altered.",
        )
    raise _Broken("bad_head", None, "The head checkpoint was altered: its MAC does not verify.")


def _bounds(lo_req: int | None, hi_req: int | None, first: int, last: int) -> tuple[int, int]:
    if last < first:
        if lo_req is not None:
            raise AuditRangeError("from_sequence", "The chain holds no entries to verify.")
        if hi_req is not None:
            raise AuditRangeError("to_sequence", "The chain holds no entries to verify.")
        return first, last
    lo = first if lo_req is None else lo_req
    hi = last if hi_req is None else hi_req
    if lo < first:
        raise AuditRangeError("from_sequence", f"Must be at least {first}: entries before #{first} were pruned.")
    if lo > last:
        raise AuditRangeError("from_sequence", f"Must be at most {last}, the last entry.")
    if hi > last:
        raise AuditRangeError("to_sequence", f"Must be at most {last}, the last entry.")
    if hi < lo:
        raise AuditRangeError("to_sequence", "Must not be lower than from_sequence.")
    return lo, hi


def _mac_before(start: int) -> str:
    mac = AuditEntry.objects.filter(sequence=start - 1).values_list("mac", flat=True).first()
    if mac is None:
        raise _Broken("missing", start - 1, f"Entry #{start - 1}, which the range chains to, is missing (deleted).")
    return mac


def _walk(key: AuditKey, head: HeadState, start: int, hi: int, prev: str) -> tuple[int, str]:
    """Check every entry from `start` to `hi`; returns how many, and the last MAC."""
    expected = start
    for row in _stream(start, hi):
        if row["sequence"] != expected:
            raise _Broken(
                "missing",
                expected,
                f"Entry #{expected} is missing (deleted): the chain jumps from #{expected - 1} to #{row['sequence']}.",
            )
        if not macs_equal(row["mac"], entry_mac(key, row, prev)):
            raise _mismatch(key, head, row, prev)
        prev = row["mac"]
        expected += 1
    if expected <= hi:
        if hi == head.last_sequence:
            raise _Broken(
                "truncated",
                expected,
                f"The chain was truncated: entries #{expected} to #{hi} are missing, "
                f"but the signed head records #{hi} as the last entry.",
            )
        raise _Broken("missing", expected, f"Entries #{expected} to #{hi} are missing (deleted).")
    return expected - start, prev


def _mismatch(key: AuditKey, head: HeadState, row: dict[str, Any], prev: str) -> _Broken:
    """Tell a moved entry from an edited one: does this position's content sit elsewhere?"""
    sequence = row["sequence"]
    for other in _stream(sequence + 1, head.last_sequence):
        if macs_equal(other["mac"], entry_mac(key, {**other, "sequence": sequence}, prev)):
            return _Broken(
                "reordered",
                sequence,
                f"Entries were reordered: the entry written as #{sequence} now has sequence #{other['sequence']}.",
            )
    return _Broken(
        "edited",
        sequence,
        f"Entry #{sequence} was edited: its fields or its MAC no longer match "
        "(or the MAC of the entry before it was changed).",
    )


def _check_tail(head: HeadState, last_mac: str) -> None:
    if not macs_equal(last_mac, head.last_mac):
        raise _Broken(
            "bad_head",
            head.last_sequence,
            f"The head checkpoint names a last MAC that entry #{head.last_sequence} does not have.",
        )
    # Highest sequence first, then the head: an honest append commits both together, so a
    # row past a head read afterwards cannot be a concurrent append.
    top = AuditEntry.objects.aggregate(top=Max("sequence"))["top"] or 0
    now = head_state() or HeadState()
    if top > now.last_sequence:
        forged = AuditEntry.objects.filter(sequence__gt=now.last_sequence).order_by("sequence").first()
        sequence = forged.sequence if forged else top
        raise _Broken(
            "forged",
            sequence,
            f"Entry #{sequence} lies past the signed head (#{now.last_sequence}): it was added outside the chain.",
        )


def _stream(lo: int, hi: int) -> Iterator[dict[str, Any]]:
    """Entries `lo`..`hi` in sequence order, BATCH_SIZE rows in memory at a time."""
    after = lo - 1
    while after < hi:
        batch = list(
            AuditEntry.objects.filter(sequence__gt=after, sequence__lte=hi)
            .order_by("sequence")
            .values(*_ROW_FIELDS)[:BATCH_SIZE]
        )
        if not batch:
            return
        yield from batch
        after = batch[-1]["sequence"]


def _start_moved(head: HeadState | None) -> bool:
    now = head_state()
    if head is None or now is None:
        return head != now
    return (now.anchor_sequence, now.pruned_through) != (head.anchor_sequence, head.pruned_through)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _log(result: VerifyResult, trigger: str) -> None:
    # The head's sequence and MAC go to the logs on every run: a log shipper then keeps a
    # copy outside the database, which is what exposes a wholesale rewrite or wipe.
    head = result.head or {}
    fields = {
        "trigger": trigger,
        "ok": result.ok,
        "reason": result.reason,
        "first_bad_sequence": result.first_bad_sequence,
        "checked": result.checked,
        "head_last_sequence": head.get("last_sequence"),
        "head_last_mac": head.get("last_mac"),
    }
    if result.ok:
        logger.info("audit chain verified", extra=fields)
    else:
        logger.error("audit chain verification failed: %s", result.message, extra=fields)
        data = {key: value for key, value in fields.items() if key != "head_last_mac"}
        notify.notify(notify.SYSTEM_AUDIT_VERIFICATION_FAILED, {**data, "message": result.message[:500]})


def _record(result: VerifyResult, trigger: str) -> None:
    AuditVerification.objects.create(
        trigger=trigger,
        ok=result.ok,
        reason=result.reason or "",
        first_bad_sequence=result.first_bad_sequence,
        message=result.message,
        from_sequence=result.from_sequence,
        to_sequence=result.to_sequence,
        full=result.full,
        checked=result.checked,
        duration_ms=result.duration_ms,
    )
    keep = list(AuditVerification.objects.values_list("id", flat=True)[:KEEP_RESULTS])
    if len(keep) == KEEP_RESULTS:
        AuditVerification.objects.filter(id__lt=min(keep)).delete()
