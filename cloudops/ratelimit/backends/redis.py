"""State in Redis: a sorted set per key, updated by one Lua script in one round trip.

The script prunes the key's expired members, counts, admits or refuses, records the hit
with a unique member (two hits in the same microsecond stay two), sets the key's TTL to the
window, and keeps a `clients` sorted set (member = key, score = when its state expires)
for metrics and the admin (trimmed of expired keys on ~1% of hits and on every read). Redis runs scripts atomically, so concurrent checks from any
number of processes are serialised per server. Not for Redis Cluster: the script touches
the shared `clients` and `violations` keys, which live in other hash slots.

Slots (cloudops/ratelimit/slots.py): a sorted set per pool and one per owner in it (member =
lease, score = when it runs out); SLOT_SCRIPT drops the leases that ran out, counts, and adds
the new one, atomically. Each set expires by itself one lease after its last change.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import random
import secrets
import weakref
from functools import cached_property
from typing import Any

import redis
import redis.asyncio

from cloudops.ratelimit.backends.base import INTERNAL_PREFIX, BackendUnavailable, Decision, KeyState, SlotDecision

PREFIX = "cloudops:ratelimit:"
CLIENTS = PREFIX + "~clients"
VIOLATIONS = PREFIX + "~violations"
TRIM_PROBABILITY = 0.01

# ARGV: now, window, limit, a unique member, flags ("r" record, "t" a client key: tracked in
# the clients index and its refusals counted as violations, "x" trim the clients index). Few arguments on purpose: encoding them is most of the client's cost.
HIT_SCRIPT = """
local key, clients, violations = KEYS[1], KEYS[2], KEYS[3]
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local flags = ARGV[5]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local allowed = count < limit
if string.find(flags, 'r', 1, true) then
  if allowed then
    redis.call('ZADD', key, now, ARGV[4])
    count = count + 1
    redis.call('PEXPIRE', key, math.ceil(window * 1000))
    if string.find(flags, 't', 1, true) then
      if string.find(flags, 'x', 1, true) then redis.call('ZREMRANGEBYSCORE', clients, '-inf', now) end
      redis.call('ZADD', clients, now + window, string.sub(key, PREFIX_LENGTH + 1))
    end
  elseif string.find(flags, 't', 1, true) then
    redis.call('INCR', violations)
  end
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {allowed and 1 or 0, count, oldest[2] or ''}
""".replace("PREFIX_LENGTH", str(len(PREFIX)))


HIT_SHA = hashlib.sha1(HIT_SCRIPT.encode()).hexdigest()

SLOTS = PREFIX + "~slots:"
# KEYS: the owner's set, the pool's set. ARGV: now, expires, lease, per_owner, total.
# Returns {1} when taken, {0, "owner" or "pool", the oldest lease's expiry} when full.
SLOT_SCRIPT = """
local now, expires = tonumber(ARGV[1]), tonumber(ARGV[2])
local caps = {tonumber(ARGV[4]), tonumber(ARGV[5])}
local names = {'owner', 'pool'}
for i = 1, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if redis.call('ZCARD', KEYS[i]) >= caps[i] then
    return {0, names[i], redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')[2]}
  end
end
local ttl = math.ceil((expires - now) * 1000)
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], expires, ARGV[3])
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return {1}
"""


class RedisBackend:
    name = "redis"

    def __init__(self, url: str, *, timeout: float = 1.0) -> None:
        self.url = url
        self.timeout = timeout
        self._tag = secrets.token_hex(6)
        self._serial = itertools.count()
        # redis.asyncio clients belong to one event loop: one per loop (a server has one).
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
            weakref.WeakKeyDictionary()
        )

    def _options(self) -> dict[str, Any]:
        return {"socket_connect_timeout": self.timeout, "socket_timeout": self.timeout, "health_check_interval": 30}

    @cached_property
    def client(self) -> redis.Redis:
        # Created on first use (never at import); the pool is shared by all threads.
        return redis.Redis.from_url(self.url, **self._options())

    def async_client(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = self._async_clients[loop] = redis.asyncio.Redis.from_url(self.url, **self._options())
        return client

    def _run_script(self, keys: list[str], args: list[Any]) -> Any:
        # EVALSHA with the digest computed here (no round trip), loading the script once when
        # the server does not have it (first use, or after a restart flushed its cache).
        try:
            return self.client.evalsha(HIT_SHA, 3, *keys, *args)
        except redis.exceptions.NoScriptError:
            self.client.script_load(HIT_SCRIPT)
            return self.client.evalsha(HIT_SHA, 3, *keys, *args)

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except redis.RedisError as exc:
            raise BackendUnavailable(f"Redis state backend: {type(exc).__name__}: {exc}") from exc

    def _hit_arguments(
        self, key: str, *, limit: int, window: float, now: float, record: bool
    ) -> tuple[list[str], list[Any]]:
        flags = "r" if record else ""
        if not key.startswith(INTERNAL_PREFIX):
            # The clients index is trimmed on ~1% of hits (and on every read of it), not on each.
            flags += "tx" if random.random() < TRIM_PROBABILITY else "t"
        # A unique member: this backend's random tag and a counter, not fresh random bytes per
        # hit (os.urandom is a system call that lets other threads take the GIL mid-request).
        args = [repr(now), repr(window), limit, f"{now!r}:{self._tag}{next(self._serial)}", flags]
        return [PREFIX + key, CLIENTS, VIOLATIONS], args

    @staticmethod
    def _decision(reply: Any, *, limit: int, window: float, now: float) -> Decision:
        allowed, count, oldest = reply
        reset_at = (float(oldest) if oldest else now) + window
        return Decision(bool(allowed), int(count), limit, window, reset_at, now)

    def hit(self, key: str, *, limit: int, window: float, now: float, record: bool = True) -> Decision:
        keys, args = self._hit_arguments(key, limit=limit, window=window, now=now, record=record)
        reply = self._call(self._run_script, keys, args)
        return self._decision(reply, limit=limit, window=window, now=now)

    async def ahit(self, key: str, *, limit: int, window: float, now: float, record: bool = True) -> Decision:
        """`hit` on the event loop itself: an async request pays no hop into a worker thread."""
        keys, args = self._hit_arguments(key, limit=limit, window=window, now=now, record=record)
        client = self.async_client()
        try:
            try:
                reply = await client.evalsha(HIT_SHA, 3, *keys, *args)
            except redis.exceptions.NoScriptError:
                await client.script_load(HIT_SCRIPT)
                reply = await client.evalsha(HIT_SHA, 3, *keys, *args)
        except redis.RedisError as exc:
            raise BackendUnavailable(f"Redis state backend: {type(exc).__name__}: {exc}") from exc
        return self._decision(reply, limit=limit, window=window, now=now)

    def reset(self, key: str) -> bool:
        def run() -> int:
            pipe = self.client.pipeline()
            pipe.delete(PREFIX + key)
            pipe.zrem(CLIENTS, key)
            return pipe.execute()[0]

        return bool(self._call(run))

    def keys(self, *, now: float, limit: int = 200) -> list[KeyState]:
        def run() -> list[KeyState]:
            live: list[tuple[bytes, float]] = self.client.zrangebyscore(CLIENTS, f"({now!r}", "+inf", withscores=True)  # type: ignore[assignment]  # withscores
            names = [name.decode() for name, _ in live]
            pipe = self.client.pipeline()
            for name in names:
                pipe.zcard(PREFIX + name)
            counts = pipe.execute()
            states = [KeyState(n, c, s) for n, c, (_, s) in zip(names, counts, live, strict=True) if c]
            return sorted(states, key=lambda s: -s.count)[:limit]

        return self._call(run)

    def violations_total(self) -> int:
        return int(self._call(self.client.get, VIOLATIONS) or 0)

    def tracked_clients(self, *, now: float) -> int:
        self.prune(now=now)
        return int(self._call(self.client.zcard, CLIENTS))

    def prune(self, *, now: float) -> int:
        # State keys expire by their own TTL; only the clients index needs trimming.
        return int(self._call(self.client.zremrangebyscore, CLIENTS, "-inf", now))

    def ping(self) -> str:
        self._call(self.client.ping)
        return "Redis state backend reachable"

    # --- slots -------------------------------------------------------------------------------

    @staticmethod
    def _slot_keys(pool: str, owner: str) -> list[str]:
        return [f"{SLOTS}{pool}:{owner}", f"{SLOTS}{pool}"]

    @cached_property
    def _slot_script(self) -> Any:
        return self.client.register_script(SLOT_SCRIPT)

    @staticmethod
    def _slot_decision(reply: Any, now: float) -> SlotDecision:
        if reply[0] == 1:
            return SlotDecision(True, now=now)
        return SlotDecision(False, reply[1].decode(), float(reply[2]), now)

    def slot_acquire(
        self, *, pool: str, owner: str, lease: str, per_owner: int, total: int, expires: float, now: float
    ) -> SlotDecision:
        args = [repr(now), repr(expires), lease, per_owner, total]
        reply = self._call(lambda: self._slot_script(keys=self._slot_keys(pool, owner), args=args))
        return self._slot_decision(reply, now)

    async def aslot_acquire(
        self, *, pool: str, owner: str, lease: str, per_owner: int, total: int, expires: float, now: float
    ) -> SlotDecision:
        """`slot_acquire` on the event loop (redis.asyncio), as `ahit` is for `hit`."""
        args: list[str | int] = [repr(now), repr(expires), lease, per_owner, total]
        client = self.async_client()
        try:
            reply = await client.register_script(SLOT_SCRIPT)(keys=self._slot_keys(pool, owner), args=args)
        except redis.RedisError as exc:
            raise BackendUnavailable(f"Redis state backend: {type(exc).__name__}: {exc}") from exc
        return self._slot_decision(reply, now)

    def _slot_refresh_pipeline(self, pipe: Any, pool: str, owner: str, lease: str, expires: float, now: float) -> None:
        # Every lease lasts as long, so the newest one's length is the whole set's.
        ttl = max(1, math.ceil((expires - now) * 1000))
        for key in self._slot_keys(pool, owner):
            pipe.zadd(key, {lease: expires})
            pipe.pexpire(key, ttl)

    def slot_refresh(self, *, pool: str, owner: str, lease: str, expires: float, now: float) -> None:
        def run() -> None:
            pipe = self.client.pipeline()
            self._slot_refresh_pipeline(pipe, pool, owner, lease, expires, now)
            pipe.execute()

        self._call(run)

    async def aslot_refresh(self, *, pool: str, owner: str, lease: str, expires: float, now: float) -> None:
        try:
            async with self.async_client().pipeline() as pipe:
                self._slot_refresh_pipeline(pipe, pool, owner, lease, expires, now)
                await pipe.execute()
        except redis.RedisError as exc:
            raise BackendUnavailable(f"Redis state backend: {type(exc).__name__}: {exc}") from exc

    def slot_release(self, *, pool: str, owner: str, lease: str) -> None:
        def run() -> None:
            pipe = self.client.pipeline()
            for key in self._slot_keys(pool, owner):
                pipe.zrem(key, lease)
            pipe.execute()

        self._call(run)

    async def aslot_release(self, *, pool: str, owner: str, lease: str) -> None:
        try:
            async with self.async_client().pipeline() as pipe:
                for key in self._slot_keys(pool, owner):
                    pipe.zrem(key, lease)
                await pipe.execute()
        except redis.RedisError as exc:
            raise BackendUnavailable(f"Redis state backend: {type(exc).__name__}: {exc}") from exc
