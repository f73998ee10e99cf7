"""State in Redis: a sorted set per key, updated by one Lua script in one round trip.

The script prunes the key's expired members, counts, admits or refuses, records the hit
with a unique member (two hits in the same microsecond stay two), sets the key's TTL to the
window, and keeps a `clients` sorted set (member = key, score = when its state expires)
for metrics and the admin (trimmed of expired keys on ~1% of hits and on every read). Redis runs scripts atomically, so concurrent checks from any
number of processes are serialised per server. Not for Redis Cluster: the script touches
the shared `clients` and `violations` keys, which live in other hash slots.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
import weakref
from functools import cached_property
from typing import Any

import redis
import redis.asyncio

from cloudops.ratelimit.backends.base import INTERNAL_PREFIX, BackendUnavailable, Decision, KeyState

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


class RedisBackend:
    name = "redis"

    def __init__(self, url: str, *, timeout: float = 1.0) -> None:
        self.url = url
        self.timeout = timeout
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
        args = [repr(now), repr(window), limit, f"{now!r}:{secrets.token_hex(6)}", flags]
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
            live = self.client.zrangebyscore(CLIENTS, f"({now!r}", "+inf", withscores=True)
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
