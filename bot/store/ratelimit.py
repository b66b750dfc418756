"""Rate limiters for the channels' outgoing calls (see :class:`bot.channels.base.RateLimiter`).

Both implement the same rule, the generic cell rate algorithm (GCRA), which is a token
bucket written as a schedule: each key keeps one number, the *theoretical arrival time*
(TAT) of its next event. With ``interval = 1/rate``, an event at ``now`` moves the TAT to
``max(TAT, now) + interval`` and is allowed once ``new TAT - now <= burst * interval``. So
``burst`` events pass at once from idle, then one per ``interval``; a key whose TAT lies in
the past is indistinguishable from a key never seen, which is what lets both stores forget
idle keys.

* :class:`InProcessRateLimiter` keeps the TATs in a dict (one process, asyncio). Every
  waiter *reserves* its slot before sleeping, so concurrent waiters on one key are spaced
  one interval apart instead of being released together.
* :class:`RedisRateLimiter` keeps them in Redis and runs the rule as one Lua script
  (atomic across processes) on the Redis server's clock, so the workers' clocks do not
  matter. The script does not reserve: it admits the event or answers how long to wait,
  and the caller sleeps and asks again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis


def _check(rate: float, burst: int) -> None:
    if not rate > 0:
        raise ValueError("rate must be positive")
    if burst < 1:
        raise ValueError("burst must be at least 1")


class InProcessRateLimiter:
    """GCRA per key in one process; safe for any number of concurrent waiters on a key."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        prune_every: float = 30.0,
        max_idle_keys: int = 10_000,
    ) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._prune_every = prune_every
        self._max_keys = max_idle_keys
        self._last_prune = clock()

    def __len__(self) -> int:
        """Keys currently remembered (idle ones are dropped as they are found)."""
        return len(self._tat)

    def _reserve(self, key: str, rate: float, burst: int) -> tuple[float, float]:
        """Take the next slot under ``key``: (seconds to wait, the key's TAT after it)."""
        _check(rate, burst)
        now = self._clock()
        self._prune(now)
        interval = 1.0 / rate
        new_tat = max(self._tat.get(key, now), now) + interval
        self._tat[key] = new_tat
        return max(0.0, new_tat - burst * interval - now), new_tat

    async def wait(self, key: str, rate: float, burst: int) -> None:
        # No await between reading and writing the TAT: the reservation is atomic.
        delay, new_tat = self._reserve(key, rate, burst)
        if delay <= 0:
            return
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            # Give the slot back if nobody queued behind it (otherwise leave the gap: a
            # later waiter has already been promised the slot after it).
            if self._tat.get(key) == new_tat:
                self._tat[key] = new_tat - 1.0 / rate
            raise

    def _prune(self, now: float) -> None:
        if now - self._last_prune < self._prune_every and len(self._tat) < self._max_keys:
            return
        self._last_prune = now
        # A TAT in the past means a full bucket, exactly as for an unknown key.
        for key in [k for k, tat in self._tat.items() if tat <= now]:
            del self._tat[key]


# KEYS[1]: the key. ARGV[1]: microseconds per event; ARGV[2]: burst.
# Returns 0 when the event is admitted (and recorded), else microseconds to wait.
# Times are integers of microseconds: exact in Lua's doubles (< 2^53) and formatted with
# %.0f, because Redis turns a Lua number into a string with only 14 significant digits.
GCRA_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return allow_at - now
end
local ttl_ms = math.floor((new_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
return 0
"""


class RedisRateLimiter:
    """GCRA shared by every process using one Redis; keys expire once idle."""

    def __init__(self, redis: Redis, prefix: str = "garda:rate:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(GCRA_LUA)

    async def wait(self, key: str, rate: float, burst: int) -> None:
        _check(rate, burst)
        interval_us = max(1, round(1_000_000 / rate))
        while True:
            wait_us = int(await self._script(keys=[self._prefix + key], args=[interval_us, burst]))
            if wait_us <= 0:
                return
            await asyncio.sleep(wait_us / 1_000_000)
