"""The work queue: which conversation has work, and who may work on it now.

The queue carries conversation ids, not messages: the messages themselves are rows in SQL.
A worker pops a conversation, takes that conversation's lock, and answers its queued
messages oldest first, so one conversation is answered in order while others proceed in
parallel. A lost queue entry (Redis restarted) costs only latency: the recovery sweep
finds queued rows in SQL and enqueues their conversations again, and a duplicate entry
costs one empty look.

Two implementations behind one interface, as Rasa does for its lock store:
:class:`InProcessQueue` for the single-process default and :class:`RedisQueue` for any
number of gateway and worker processes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol


class QueueUnavailable(RuntimeError):
    """The queue cannot take or give work right now (the gateway answers 503)."""


class WorkQueue(Protocol):
    async def push(self, conversation_id: int) -> None: ...

    async def pop(self, timeout: float) -> int | None: ...

    async def depth(self) -> int: ...

    async def ping(self) -> None: ...

    def lock(self, key: int | str) -> contextlib.AbstractAsyncContextManager[bool]:
        """Hold a lock (a conversation id, or a name such as "telegram-poller") for the block;
        yields False at once if another worker or process holds it."""
        ...

    async def close(self) -> None: ...


class InProcessQueue:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._held: set[int | str] = set()

    async def push(self, conversation_id: int) -> None:
        self._queue.put_nowait(conversation_id)

    async def pop(self, timeout: float) -> int | None:
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def depth(self) -> int:
        return self._queue.qsize()

    async def ping(self) -> None:
        return None

    @contextlib.asynccontextmanager
    async def lock(self, key: int | str) -> AsyncIterator[bool]:
        if key in self._held:
            yield False
            return
        self._held.add(key)
        try:
            yield True
        finally:
            self._held.discard(key)

    async def close(self) -> None:
        return None


class RedisQueue:
    """A Redis list of conversation ids, and redis-py's own Lock per conversation."""

    def __init__(self, url: str, prefix: str = "garda:", lock_timeout: float = 60.0) -> None:
        from bot.store.redis_client import connect

        self.client: Any = connect(url)
        self.key = f"{prefix}queue"
        self.lock_prefix = f"{prefix}lock:"
        self.lock_timeout = lock_timeout

    async def push(self, conversation_id: int) -> None:
        from redis.exceptions import RedisError

        try:
            await self.client.lpush(self.key, conversation_id)
        except (RedisError, OSError) as error:
            raise QueueUnavailable(type(error).__name__) from error

    async def pop(self, timeout: float) -> int | None:
        from redis.exceptions import RedisError

        try:
            item = await self.client.brpop(self.key, timeout=max(1, int(timeout)))
        except (RedisError, OSError) as error:
            raise QueueUnavailable(type(error).__name__) from error
        if item is None:
            return None
        return int(item[1])

    async def depth(self) -> int:
        from redis.exceptions import RedisError

        try:
            return int(await self.client.llen(self.key))
        except (RedisError, OSError) as error:
            raise QueueUnavailable(type(error).__name__) from error

    async def ping(self) -> None:
        from redis.exceptions import RedisError

        try:
            await self.client.ping()
        except (RedisError, OSError) as error:
            raise QueueUnavailable(type(error).__name__) from error

    @contextlib.asynccontextmanager
    async def lock(self, key: int | str) -> AsyncIterator[bool]:
        from redis.exceptions import LockError, RedisError

        lock = self.client.lock(f"{self.lock_prefix}{key}",
                                timeout=self.lock_timeout, blocking=False)
        try:
            acquired = await lock.acquire()
        except (RedisError, OSError) as error:
            raise QueueUnavailable(type(error).__name__) from error
        if not acquired:
            yield False
            return
        refresher = asyncio.create_task(self._keep(lock))
        try:
            yield True
        finally:
            refresher.cancel()
            with contextlib.suppress(LockError, RedisError, OSError):
                await lock.release()

    async def _keep(self, lock: Any) -> None:
        """Renew the lock while its holder works (a long 429 wait must not let it lapse)."""
        from redis.exceptions import RedisError

        while True:
            await asyncio.sleep(self.lock_timeout / 3)
            with contextlib.suppress(RedisError, OSError):
                await lock.reacquire()

    async def close(self) -> None:
        await self.client.close()


def make_queue(redis_url: str | None) -> WorkQueue:
    return RedisQueue(redis_url) if redis_url else InProcessQueue()
