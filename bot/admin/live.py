"""Live notifications for the console: "ticket N changed", pushed to the pages open on it.

SQL is the record; a notification is only a hint that a page should read its rows again.
So an event carries a ticket id and an action name and nothing else (no message text, no
names: it crosses Redis and reaches every logged-in console), and a lost one costs a page
its freshness until its next poll, never data.

    notifier.publish({"ticket": 7, "action": "claimed"})   after the change is committed
    async for event in notifier.subscribe(): ...            one subscription per open page

:class:`InProcessNotifier` serves the embedded default (one process) and tests.
:class:`RedisNotifier` uses pub/sub on ``garda:tickets``: in the Redis deployment a ticket
opened by a worker process must reach the consoles of the gateway processes. Each process
holds one Redis subscription and fans it out to its own pages.

``publish`` never blocks and never raises for a Redis outage: the change it announces is
committed already, and the admin who made it must not see an error for a lost hint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Coroutine, Mapping
from typing import Any

logger = logging.getLogger(__name__)

CHANNEL = "garda:tickets"
# Every action an event may name: the ticket changes the console shows, and "changed" for
# a change found in SQL that nobody announced (see bot/admin/console.py, the event stream).
ACTIONS = frozenset({"opened", "escalated", "claimed", "released", "resolved", "handed_back",
                     "replied", "message", "changed"})
QUEUE_SIZE = 100      # events a slow page may fall behind by (more are dropped: it reloads)
READY_WAIT = 2.0      # seconds a new subscription waits for Redis to confirm it
MAX_PAUSE = 5.0       # longest wait between attempts to subscribe again after an outage


def ticket_event(ticket_id: int, action: str) -> dict[str, Any]:
    """The one shape an event has: ``{"ticket": id, "action": name}``."""
    if action not in ACTIONS:
        raise ValueError(f"unknown ticket action {action!r}")
    if isinstance(ticket_id, bool) or not isinstance(ticket_id, int) or ticket_id < 1:
        raise ValueError("a ticket id is a positive integer")
    return {"ticket": ticket_id, "action": action}


def _clean(event: Mapping[str, Any]) -> dict[str, Any]:
    """Only the ticket id and the action cross: anything else a caller adds is dropped."""
    return ticket_event(event.get("ticket"), event.get("action"))  # type: ignore[arg-type]


def _decode(data: Any) -> dict[str, Any] | None:
    try:
        found = json.loads(data)
        return _clean(found) if isinstance(found, dict) else None
    except (TypeError, ValueError):
        return None


class _End:
    """Put on a subscription's queue: the notifier is shutting down."""


_END = _End()


class Subscription:
    """One page's events, as an async iterator. Registered when created (so an event
    published right after ``subscribe()`` returns is not missed); ``close`` when done."""

    def __init__(self, hub: _Hub, ready: asyncio.Event | None) -> None:
        self._hub = hub
        self._ready = ready
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[dict[str, Any] | _End] = asyncio.Queue(QUEUE_SIZE)
        self.ended = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        event = await self.next(None)
        assert event is not None
        return event

    async def next(self, timeout: float | None) -> dict[str, Any] | None:
        """The next event; None when ``timeout`` seconds pass without one. Raises
        StopAsyncIteration once the notifier ends its subscriptions."""
        if self.ended:
            raise StopAsyncIteration
        try:
            item = await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        if isinstance(item, _End):
            self.ended = True
            self.close()
            raise StopAsyncIteration
        return item

    async def ready(self, timeout: float = READY_WAIT) -> bool:
        """Wait until events published elsewhere reach this subscription (Redis has
        confirmed the process's subscription). False if it has not within ``timeout``."""
        if self._ready is None:
            return True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self._ready.is_set()

    def close(self) -> None:
        self._hub.remove(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def _offer(self, item: dict[str, Any] | _End) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            if isinstance(item, _End):  # make room: the end must arrive
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.queue.get_nowait()
                self.queue.put_nowait(item)
            # An event for a page this far behind is dropped: it reloads on those queued.


class _Hub:
    """This process's subscriptions. Thread-safe: an event may come from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()
        self.ended = False

    def add(self, subscription: Subscription) -> None:
        with self._lock:
            ended = self.ended
            if not ended:
                self._subscriptions.add(subscription)
        if ended:
            subscription._offer(_END)

    def remove(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def __len__(self) -> int:
        with self._lock:
            return len(self._subscriptions)

    def deliver(self, item: dict[str, Any] | _End) -> None:
        with self._lock:
            targets = list(self._subscriptions)
            if isinstance(item, _End):
                self.ended = True
                self._subscriptions.clear()
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for subscription in targets:
            # The end may come from a signal handler: never touch a queue from there.
            if subscription.loop is running and not isinstance(item, _End):
                subscription._offer(item)
            elif not subscription.loop.is_closed():
                with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                    subscription.loop.call_soon_threadsafe(subscription._offer, item)


class Notifier:
    """Publish ticket events; subscribe to them. Subclasses decide how events travel."""

    def __init__(self) -> None:
        self._hub = _Hub()

    def publish(self, event: Mapping[str, Any]) -> None:
        """Announce a committed ticket change (``{"ticket": id, "action": name}``; any
        other key is dropped). Returns at once; delivery is best effort."""
        raise NotImplementedError

    def subscribe(self) -> Subscription:
        """A new subscription (call it inside the event loop that will read it)."""
        subscription = Subscription(self._hub, None)
        self._hub.add(subscription)
        return subscription

    @property
    def subscribers(self) -> int:
        return len(self._hub)

    def end_streams(self) -> None:
        """End every subscription, now and to come: the process is shutting down, and an
        open event stream must not hold the web server's graceful shutdown up. Safe to
        call from any thread (a signal handler)."""
        self._hub.deliver(_END)

    async def close(self) -> None:
        self.end_streams()


class InProcessNotifier(Notifier):
    """Events go straight to this process's subscriptions."""

    def publish(self, event: Mapping[str, Any]) -> None:
        self._hub.deliver(_clean(event))


class RedisNotifier(Notifier):
    """Events go through a Redis channel to every process's subscriptions (this one's
    too, so a page sees the same stream whichever process made the change)."""

    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        super().__init__()
        self.url = url
        self.channel = channel
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribed: asyncio.Event | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._closed = False

    def _redis(self) -> Any:
        if self._client is None:
            from bot.store.redis_client import connect

            self._client = connect(self.url)
        return self._client

    def publish(self, event: Mapping[str, Any]) -> None:
        payload = json.dumps(_clean(event))
        if self._closed:
            return
        self._schedule(self._send(payload))

    def _schedule(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # another thread: hand it to the loop this notifier runs on
            if self._loop is None or self._loop.is_closed():
                coro.close()
                logger.warning("live notification dropped: no event loop to send it from")
                return
            asyncio.run_coroutine_threadsafe(coro, self._loop)
            return
        if self._loop is None:
            self._loop = loop
        task = loop.create_task(coro)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, payload: str) -> None:
        from redis.exceptions import RedisError

        try:
            await self._redis().publish(self.channel, payload)
        except (RedisError, OSError) as error:
            logger.warning("live notification not sent (%s)", type(error).__name__)

    def subscribe(self) -> Subscription:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        if self._subscribed is None:
            self._subscribed = asyncio.Event()
        if self._reader is None and not self._closed:
            self._reader = loop.create_task(self._read(), name="garda-live-notifications")
        subscription = Subscription(self._hub, self._subscribed)
        self._hub.add(subscription)
        return subscription

    async def _read(self) -> None:
        """Hold the process's subscription, subscribing again after an outage."""
        from redis.exceptions import RedisError

        assert self._subscribed is not None
        pause = 0.5
        while True:
            pubsub = self._redis().pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message.get("type") == "subscribe":
                        self._subscribed.set()
                        pause = 0.5
                    elif message.get("type") == "message":
                        event = _decode(message.get("data"))
                        if event is not None:
                            self._hub.deliver(event)
            except Exception as error:  # RedisError, OSError, or a bug: keep listening
                if self._subscribed.is_set() or not isinstance(error, (RedisError, OSError)):
                    logger.warning("live notifications interrupted (%s); subscribing again",
                                   type(error).__name__)
                self._subscribed.clear()
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.reset()
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE)

    async def close(self) -> None:
        self._closed = True
        self.end_streams()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._sending:
            await asyncio.wait(list(self._sending), timeout=2.0)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None


def make_notifier(redis_url: str | None) -> Notifier:
    return RedisNotifier(redis_url) if redis_url else InProcessNotifier()
