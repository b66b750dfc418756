"""Rate limiters: the in-process GCRA and the Redis one (on a private redis-server)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
from stubs import free_port

from bot.store.ratelimit import InProcessRateLimiter, RedisRateLimiter


async def _release_times(limiter, key: str, n: int, rate: float, burst: int) -> list[float]:
    start = time.monotonic()
    times: list[float] = []

    async def one() -> None:
        await limiter.wait(key, rate, burst)
        times.append(time.monotonic() - start)

    await asyncio.gather(*(one() for _ in range(n)))
    return sorted(times)


def test_concurrent_waiters_on_one_key_are_spaced_not_released_together() -> None:
    times = asyncio.run(_release_times(InProcessRateLimiter(), "k", 5, rate=20.0, burst=1))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] < 0.03
    assert all(gap > 0.04 for gap in gaps), gaps  # interval 0.05 s
    assert times[-1] == pytest.approx(0.2, abs=0.05)


def test_burst_passes_at_once_then_the_rate_applies() -> None:
    times = asyncio.run(_release_times(InProcessRateLimiter(), "k", 5, rate=10.0, burst=3))
    assert all(t < 0.03 for t in times[:3]), times
    assert times[3] == pytest.approx(0.1, abs=0.04)
    assert times[4] == pytest.approx(0.2, abs=0.04)


def test_keys_are_independent() -> None:
    async def scenario() -> tuple[list[float], float]:
        limiter = InProcessRateLimiter()
        await limiter.wait("a", 5.0, 1)  # "a" is now busy for 0.2 s
        start = time.monotonic()
        slow = asyncio.ensure_future(_release_times(limiter, "a", 1, 5.0, 1))
        await limiter.wait("b", 5.0, 1)
        b_after = time.monotonic() - start
        return await slow, b_after

    a_times, b_after = asyncio.run(scenario())
    assert b_after < 0.03
    assert a_times[0] > 0.15


def test_a_bucket_refills_while_idle() -> None:
    async def scenario() -> float:
        limiter = InProcessRateLimiter()
        for _ in range(2):
            await limiter.wait("k", 20.0, 2)
        await asyncio.sleep(0.11)  # two intervals: the burst is back
        start = time.monotonic()
        for _ in range(2):
            await limiter.wait("k", 20.0, 2)
        return time.monotonic() - start

    assert asyncio.run(scenario()) < 0.03


def test_idle_keys_are_dropped() -> None:
    now = [0.0]
    limiter = InProcessRateLimiter(clock=lambda: now[0], prune_every=10.0)

    async def scenario() -> None:
        for i in range(100):
            await limiter.wait(f"chat:{i}", 1.0, 1)
        assert len(limiter) == 100
        now[0] = 11.0  # every key idle longer than its interval
        await limiter.wait("chat:new", 1.0, 1)

    asyncio.run(scenario())
    assert len(limiter) == 1


def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    async def scenario() -> float:
        limiter = InProcessRateLimiter()
        await limiter.wait("k", 5.0, 1)
        waiter = asyncio.ensure_future(limiter.wait("k", 5.0, 1))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        start = time.monotonic()
        await limiter.wait("k", 5.0, 1)  # the slot the cancelled waiter held, not the next
        return time.monotonic() - start

    assert asyncio.run(scenario()) < 0.25


def test_rate_and_burst_are_checked() -> None:
    with pytest.raises(ValueError):
        asyncio.run(InProcessRateLimiter().wait("k", 0.0, 1))
    with pytest.raises(ValueError):
        asyncio.run(InProcessRateLimiter().wait("k", 1.0, 0))


# --- Redis ----------------------------------------------------------------------------


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A throwaway redis-server on a free port (no persistence); yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian package 'redis-server')")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="garda-redis-") as workdir:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir,
        )
        try:
            import redis

            deadline = time.monotonic() + 10
            client = redis.Redis(port=port, socket_connect_timeout=0.5)
            while True:
                try:
                    if client.ping():
                        break
                except redis.ConnectionError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("private redis-server did not start")
                time.sleep(0.05)
            client.close()
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _close(client) -> None:
    await client.close()
    await client.connection_pool.disconnect()  # redis-py 4.6 leaves pooled sockets open


def test_redis_limiter_spaces_events_across_two_connections() -> None:
    from redis.asyncio import Redis

    async def scenario(url: str) -> tuple[list[float], int]:
        first, second = Redis.from_url(url), Redis.from_url(url)
        try:
            limiters = [RedisRateLimiter(first), RedisRateLimiter(second)]
            # Connect and load the script first: only the limiter's own spacing is timed.
            for limiter in limiters:
                await limiter.wait("telegram:warm-up", 1000.0, 10)
            start = time.monotonic()
            times: list[float] = []

            async def one(limiter: RedisRateLimiter) -> None:
                await limiter.wait("telegram:chat:1", 10.0, 1)
                times.append(time.monotonic() - start)

            await asyncio.gather(*(one(limiters[i % 2]) for i in range(6)))
            ttl = await first.pttl("garda:rate:telegram:chat:1")
            return sorted(times), ttl
        finally:
            for client in (first, second):
                await _close(client)

    with private_redis() as url:
        times, ttl = asyncio.run(scenario(url))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] < 0.1  # the first event waits for no slot (the interval is 0.1 s)
    assert all(gap > 0.07 for gap in gaps), gaps  # interval 0.1 s, whichever connection
    assert times[-1] == pytest.approx(0.5, abs=0.1)
    assert 0 < ttl <= 200  # the key expires once its schedule is in the past


def test_redis_limiter_allows_the_burst_and_keeps_keys_apart() -> None:
    from redis.asyncio import Redis

    async def scenario(url: str) -> tuple[float, float]:
        client = Redis.from_url(url)
        try:
            limiter = RedisRateLimiter(client, prefix="test:")
            start = time.monotonic()
            for _ in range(3):
                await limiter.wait("a", 2.0, 3)
            burst_done = time.monotonic() - start
            await limiter.wait("b", 2.0, 1)  # another key: not delayed by "a"
            b_done = time.monotonic() - start
            return burst_done, b_done
        finally:
            await _close(client)

    with private_redis() as url:
        burst_done, b_done = asyncio.run(scenario(url))
    assert burst_done < 0.1
    assert b_done < 0.1
