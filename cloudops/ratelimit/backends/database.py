"""State in a Django database: the default one, or STATE_BACKEND_URL's (alias `ratelimit`).

Atomicity per key, two ways. The locked check runs in one transaction that first locks the
key's row: on PostgreSQL and MySQL `SELECT ... FOR UPDATE` on the row (created first by an
upsert, so two first hits cannot both miss it); on SQLite the transaction starts with
`BEGIN IMMEDIATE`, which takes the database write lock up front. A second process reads the
row only after the first has committed. A repeated check (`_hit_known`) is one autocommit
UPDATE that writes only if the row still holds the log this process decided on: a
compare-and-set, so a log another process changed in between is never overwritten and the
locked check decides instead. Either way no more than `limit` hits are ever admitted. (Under
a request's worth of threads, each statement lets go of the GIL and the threads queue behind
it: four statements per check cost a request more than the check itself, one costs less.)

Slots (cloudops/ratelimit/slots.py) are rows of SlotLease, one per open stream. Taking one
locks its pool's row in the bucket table first (the same upsert and row lock as a check), so
the count and the insert that follows are atomic across processes; refreshing or releasing a
lease touches that lease's row only. Leases that ran out are deleted by the pool's next
acquisition.

A process alone at a SQLite state database (the embedded default) decides in memory and
writes behind instead (writebehind.py says why and how, solo.py how it knows it is alone);
it comes back to the checks above as soon as another process wants the same state.

Expired rows are deleted by a prune that runs on a random ~1/`prune_every` of writes (and
by `manage.py ratelimit_prune`), so the table holds about the live keys only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import struct
from functools import cached_property
from typing import Any

from django.db import DatabaseError, connections

from cloudops.ratelimit.backends.base import (
    INTERNAL_PREFIX,
    BackendUnavailable,
    Decision,
    KeyState,
    SlotDecision,
    decide,
    slot_decide,
)
from cloudops.ratelimit.backends.solo import lock_path
from cloudops.ratelimit.backends.sqlpool import autocommit_cursor, param_style, transaction_cursor
from cloudops.ratelimit.backends.writebehind import WriteBehind
from cloudops.ratelimit.models import RateLimitBucket, RateLimitCounter, SlotLease
from cloudops.structured_logging import get_logger

VIOLATIONS = "violations"
KEY_LENGTH = 255
# A pool's row in the bucket table is the lock its slot acquisitions queue on.
SLOT_LOCK_PREFIX = INTERNAL_PREFIX + "slots:"
# Keys whose last seen log a process keeps for the one-statement check: ~5 KB each at a
# limit of 100 (hex text and floats), so at most ~5 MB.
KNOWN_LOGS = 1024

logger = get_logger("simpletuner.cloud.ratelimit")


def encode_hits(hits: list[float]) -> str:
    """A key's log as stored: little-endian doubles in hex. Not JSON: parsing a hundred float
    literals was a third of a check's CPU, unpacking them is a few microseconds, and the times
    come back bit for bit."""
    return struct.pack(f"<{len(hits)}d", *hits).hex()


def decode_hits(stored: str) -> list[float]:
    """`encode_hits` reversed; a JSON array (the column's default, and rows written before the
    packed format) is read as such."""
    if stored.startswith("["):
        return [float(t) for t in json.loads(stored)]
    packed = bytes.fromhex(stored)
    return list(struct.unpack(f"<{len(packed) // 8}d", packed))


def row_key(key: str) -> str:
    """The primary key for `key`: itself, or a digest-suffixed prefix if it is too long."""
    if len(key) <= KEY_LENGTH:
        return key
    return key[:190] + "#" + hashlib.sha256(key.encode()).hexdigest()


class DatabaseBackend:
    name = "database"

    def __init__(self, alias: str = "default", *, prune_every: int = 1000, write_behind: bool = False) -> None:
        """`write_behind`: on SQLite, decide in memory while this is the only process using
        the state (RATE_LIMIT_WRITE_BEHIND; off for backends a test makes itself)."""
        self.alias = alias
        self.prune_every = prune_every
        # Per key, the log as this process last wrote or read it (see _hit_known), the most
        # recently used KNOWN_LOGS keys (None: there is no row yet, see writebehind.py).
        self._known: dict[str, tuple[str | None, tuple[float, ...]]] = {}
        connection = connections[alias]
        self._behind: WriteBehind | None = None
        if write_behind and connection.vendor == "sqlite":
            self._behind = WriteBehind(self, lock_path(connection.settings_dict["NAME"]))

    def close(self) -> None:
        """Write what is held in memory and leave the state (a backend being replaced)."""
        if self._behind is not None:
            self._behind.close()

    def _flushed(self) -> None:
        """Before reading rows: what this process decided in memory is in them. Not inside a
        caller's transaction: on SQLite the flush could wait for the very lock it holds."""
        if self._behind is not None and not connections[self.alias].in_atomic_block:
            try:
                self._behind.flush()
            except DatabaseError as exc:
                raise self._fail(exc) from exc

    def _fail(self, exc: Exception) -> BackendUnavailable:
        connection = connections[self.alias]
        # A broken connection is dropped so the next check reconnects (not inside a caller's
        # transaction, which owns the connection).
        if not connection.in_atomic_block:
            connection.close()
        return BackendUnavailable(f"{connection.vendor} state database: {type(exc).__name__}: {exc}")

    @cached_property
    def _sql(self) -> dict[str, str]:
        """The hot path's statements, written once per backend. Plain SQL rather than
        querysets: building the queries costs the ORM more than SQLite takes to run them, and
        a check runs on every request."""
        connection = connections[self.alias]
        qn = connection.ops.quote_name
        table, counters = qn(RateLimitBucket._meta.db_table), qn(RateLimitCounter._meta.db_table)
        key, window, value = qn("key"), qn("window"), qn("value")
        # Row lock on PostgreSQL/MySQL; SQLite has none and needs none (BEGIN IMMEDIATE).
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        insert = f"INSERT INTO {table} ({key}, {qn('hits')}, {window}, {qn('expires_at')}) VALUES (%s, '[]', %s, %s)"
        count = f"INSERT INTO {counters} ({qn('name')}, {value}) VALUES (%s, 1)"
        count_n = f"INSERT INTO {counters} ({qn('name')}, {value}) VALUES (%s, %s)"
        if connection.vendor == "mysql":
            upsert = f"{insert} ON DUPLICATE KEY UPDATE {window} = VALUES({window})"
            violation = f"{count} ON DUPLICATE KEY UPDATE {value} = {value} + 1"
            violations_add = f"{count_n} ON DUPLICATE KEY UPDATE {value} = {value} + VALUES({value})"
        else:
            upsert = f"{insert} ON CONFLICT ({key}) DO UPDATE SET {window} = excluded.{window}"
            violation = f"{count} ON CONFLICT ({qn('name')}) DO UPDATE SET {value} = {counters}.{value} + 1"
            violations_add = (
                f"{count_n} ON CONFLICT ({qn('name')}) DO UPDATE SET {value} = {counters}.{value} + excluded.{value}"
            )
        statements = {
            "select": f"SELECT {qn('hits')} FROM {table} WHERE {key} = %s{lock}",
            "update": f"UPDATE {table} SET {qn('hits')} = %s, {window} = %s, {qn('expires_at')} = %s WHERE {key} = %s",
            # The one-statement check: written only if the row still holds the log it decided on.
            "swap": f"UPDATE {table} SET {qn('hits')} = %s, {window} = %s, {qn('expires_at')} = %s "
            f"WHERE {key} = %s AND {qn('hits')} = %s",
            # The refusals a process alone counted since its last flush (writebehind.py).
            "violations": violations_add,
            # Upserts, not INSERT IGNORE: on InnoDB a duplicate-key INSERT IGNORE takes a shared
            # lock, and concurrent first hits then deadlock upgrading it; an upsert asks for the
            # exclusive row lock at once, so they simply queue.
            "upsert": upsert,
            "violation": violation,
        }
        return {name: param_style(sql, connection.vendor) for name, sql in statements.items()}

    def _locked_hits(self, cursor: Any, key: str, window: float, now: float) -> str:
        cursor.execute(self._sql["select"], [key])
        row = cursor.fetchone()
        if row is None:
            cursor.execute(self._sql["upsert"], [key, window, now])
            cursor.execute(self._sql["select"], [key])
            row = cursor.fetchone()
        return row[0]

    def hit(self, key: str, *, limit: int, window: float, now: float, record: bool = True) -> Decision:
        key = row_key(key)
        behind = self._behind
        try:
            # Alone: decided in memory. None: in the database (counted by `behind` until done).
            decision = None if behind is None else behind.hit(key, limit=limit, window=window, now=now, record=record)
            if decision is None:
                try:
                    decision = self._hit_in_database(key, limit=limit, window=window, now=now, record=record)
                finally:
                    if behind is not None:
                        behind.done_outside()
        except DatabaseError as exc:
            raise self._fail(exc) from exc
        if not record:
            return decision
        if random.random() * self.prune_every < 1:
            # Housekeeping after a committed decision: its failure must not turn that
            # decision into an outage (a fail-closed rule would answer 503).
            try:
                self.prune(now=now)
            except BackendUnavailable as exc:
                logger.warning("rate-limit state prune failed: %s", exc)
        return decision

    def _hit_in_database(self, key: str, *, limit: int, window: float, now: float, record: bool) -> Decision:
        if not record:
            return self._peek(key, limit=limit, window=window, now=now)
        return self._hit_known(key, limit=limit, window=window, now=now) or self._hit_locked(
            key, limit=limit, window=window, now=now
        )

    def _hit_known(self, key: str, *, limit: int, window: float, now: float) -> Decision | None:
        """One UPDATE: the hit decided on the log this process last saw for `key`, written only
        if the row still holds exactly that log (compare-and-set in one statement, atomic on
        every database), so the decision is the one the locked check would make. None when
        there is no such log, it would refuse (a refusal is decided on the row itself), or the
        row changed since (another process counted, a prune or a reset): the locked check then
        decides. In a single process, every check of a key after its first takes this path."""
        known = self._known.get(key)
        if known is None:
            return None
        stored, hits = known
        decision, kept = decide(list(hits), now=now, limit=limit, window=window, record=True)
        if not decision.allowed:
            return None
        log = encode_hits(kept)
        try:
            with autocommit_cursor(self.alias) as cursor:
                cursor.execute(self._sql["swap"], [log, window, kept[-1] + window, key, stored])
                written = cursor.rowcount == 1
        except DatabaseError:
            # E.g. a pooled connection the server dropped (now closed): the locked check
            # replaces it, or reports the outage.
            written = False
        if not written:
            self._known.pop(key, None)
            return None
        self._remember(key, log, kept)
        return decision

    def _remember(self, key: str, stored: str | None, hits: list[float]) -> None:
        """Keep `key`'s log, decoded (a tuple: never sorted in place), and what its row holds."""
        known = self._known
        known.pop(key, None)
        if len(known) >= KNOWN_LOGS:
            # The least recently used key goes (another thread may be changing the dict), but
            # not one whose log is still to be written (writebehind.py).
            dirty = self._behind.dirty if self._behind is not None else {}
            with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                oldest = next(candidate for candidate in known if candidate not in dirty)
                del known[oldest]
        known[key] = (stored, tuple(hits))

    def _hit_locked(self, key: str, *, limit: int, window: float, now: float) -> Decision:
        """The hit decided under the key's row lock."""
        with transaction_cursor(self.alias) as cursor:
            stored = self._locked_hits(cursor, key, window, now)
            hits = decode_hits(stored)
            decision, kept = decide(hits, now=now, limit=limit, window=window, record=True)
            if decision.allowed:
                stored, hits = encode_hits(kept), kept
                cursor.execute(self._sql["update"], [stored, window, kept[-1] + window, key])
            elif not key.startswith(INTERNAL_PREFIX):
                # The last lock a check takes, so it cannot close a deadlock cycle.
                cursor.execute(self._sql["violation"], [VIOLATIONS])
        self._remember(key, stored, hits)
        return decision

    def _peek(self, key: str, *, limit: int, window: float, now: float) -> Decision:
        row = RateLimitBucket.objects.using(self.alias).filter(key=key).values_list("hits", flat=True).first()
        decision, _ = decide(decode_hits(row or "[]"), now=now, limit=limit, window=window, record=False)
        return decision

    def reset(self, key: str) -> bool:
        key = row_key(key)
        pending = self._behind is not None and self._behind.forget(key)
        try:
            deleted, _ = RateLimitBucket.objects.using(self.alias).filter(key=key).delete()
        except DatabaseError as exc:
            raise self._fail(exc) from exc
        if self._behind is not None:
            self._behind.forget(key)
        return deleted > 0 or pending

    def _live(self, now: float):  # type: ignore[no-untyped-def]
        return (
            RateLimitBucket.objects.using(self.alias)
            .filter(expires_at__gt=now)
            .exclude(key__startswith=INTERNAL_PREFIX)
        )

    def keys(self, *, now: float, limit: int = 200) -> list[KeyState]:
        self._flushed()
        try:
            rows = list(self._live(now).order_by("-expires_at")[: limit * 5].values_list("key", "hits", "window"))
        except DatabaseError as exc:
            raise self._fail(exc) from exc
        states = []
        for key, hits, window in rows:
            live = [t for t in decode_hits(hits) if t > now - window]
            if live:
                states.append(KeyState(key, len(live), live[-1] + window))
        return sorted(states, key=lambda s: -s.count)[:limit]

    def violations_total(self) -> int:
        self._flushed()
        try:
            value = RateLimitCounter.objects.using(self.alias).filter(name=VIOLATIONS).values_list("value", flat=True)
            return int(value.first() or 0)
        except DatabaseError as exc:
            raise self._fail(exc) from exc

    def tracked_clients(self, *, now: float) -> int:
        self._flushed()
        try:
            return self._live(now).count()
        except DatabaseError as exc:
            raise self._fail(exc) from exc

    def prune(self, *, now: float) -> int:
        try:
            deleted, _ = RateLimitBucket.objects.using(self.alias).filter(expires_at__lte=now).delete()
        except DatabaseError as exc:
            raise self._fail(exc) from exc
        return deleted

    def ping(self) -> str:
        try:
            RateLimitBucket.objects.using(self.alias).exists()
        except DatabaseError as exc:
            raise self._fail(exc) from exc
        vendor = connections[self.alias].vendor
        names = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB"}
        where = "the main database" if self.alias == "default" else "STATE_BACKEND_URL"
        return f"{names.get(vendor, vendor)} state backend reachable ({where})"

    @cached_property
    def _slot_sql(self) -> dict[str, str]:
        connection = connections[self.alias]
        qn = connection.ops.quote_name
        table = qn(SlotLease._meta.db_table)
        lease, pool, owner, expires = qn("lease"), qn("pool"), qn("owner"), qn("expires_at")
        held = f"SELECT COUNT(*), MIN({expires}) FROM {table} WHERE {pool} = %s"
        statements = {
            "expire": f"DELETE FROM {table} WHERE {pool} = %s AND {expires} <= %s",
            "pool": held,
            "owner": f"{held} AND {owner} = %s",
            "insert": f"INSERT INTO {table} ({lease}, {pool}, {owner}, {expires}) VALUES (%s, %s, %s, %s)",
            "refresh": f"UPDATE {table} SET {expires} = %s WHERE {lease} = %s",
            "release": f"DELETE FROM {table} WHERE {lease} = %s",
        }
        return {name: param_style(sql, connection.vendor) for name, sql in statements.items()}

    def slot_acquire(
        self, *, pool: str, owner: str, lease: str, per_owner: int, total: int, expires: float, now: float
    ) -> SlotDecision:
        sql = self._slot_sql
        try:
            with transaction_cursor(self.alias) as cursor:
                self._locked_hits(cursor, SLOT_LOCK_PREFIX + pool, expires - now, now)
                cursor.execute(sql["expire"], [pool, now])
                cursor.execute(sql["owner"], [pool, owner])
                owned = cursor.fetchone()
                cursor.execute(sql["pool"], [pool])
                pooled = cursor.fetchone()
                decision = slot_decide(
                    owner=(owned[0], owned[1]), pool=(pooled[0], pooled[1]), per_owner=per_owner, total=total, now=now
                )
                if decision.allowed:
                    cursor.execute(sql["insert"], [lease, pool, owner, expires])
        except DatabaseError as exc:
            raise self._fail(exc) from exc
        return decision

    def slot_refresh(self, *, pool: str, owner: str, lease: str, expires: float, now: float) -> None:
        try:
            with transaction_cursor(self.alias) as cursor:
                cursor.execute(self._slot_sql["refresh"], [expires, lease])
                if cursor.rowcount == 0:  # ran out and was deleted: the stream still holds it
                    cursor.execute(self._slot_sql["insert"], [lease, pool, owner, expires])
        except DatabaseError as exc:
            raise self._fail(exc) from exc

    def slot_release(self, *, pool: str, owner: str, lease: str) -> None:
        try:
            with transaction_cursor(self.alias) as cursor:
                cursor.execute(self._slot_sql["release"], [lease])
        except DatabaseError as exc:
            raise self._fail(exc) from exc
