"""The message path behind the web app: store, queue, decide, reply.

    webhook -> Runtime.ingest  (one SQL row per platform message id, then the queue)
    queue   -> worker          (one conversation at a time, oldest message first)
            -> brain           (a child process: deciding is CPU work; see brain_process)
            -> outbox rows     (written with the decision, in one transaction)
            -> channel.send    (retried with backoff; a row once sent is never sent again)

Roles: ``gateway`` receives (webhooks, Telegram long polling); ``worker`` answers; ``all``
is both in one process (the embedded default: SQLite and the in-process queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from prometheus_client import Gauge
from sqlalchemy.exc import SQLAlchemyError

from bot.admin.live import InProcessNotifier, Notifier, ticket_event
from bot.brain.decision import ESCALATE, OUT_OF_SCOPE, Decision
from bot.brain.ranking import FALLBACK
from bot.channels.base import (
    MEDIA,
    TEXT,
    Channel,
    Inbound,
    Outgoing,
    SendContext,
    SendError,
    StatusEvent,
)
from bot.config import Settings
from bot.gateway import metrics
from bot.safety.categories import CRITICAL, REPEATED_FALLBACK, categories
from bot.store.db import ConversationRow, Database, InboundRow, OutboxRow, Stored
from bot.store.models import QUEUED, utcnow
from bot.store.queue import QueueUnavailable, WorkQueue
from bot.store.tickets import Ticket, Tickets, TicketSpec

logger = logging.getLogger(__name__)
HANDOFF = "handoff"  # a message that went to people instead of the bot
T = TypeVar("T")

GATEWAY = "gateway"
WORKER = "worker"
ROLES = {"all": {GATEWAY, WORKER}, GATEWAY: {GATEWAY}, WORKER: {WORKER}}

MAX_ATTEMPTS = 8
WAIT_IN_PLACE = 10.0      # retry waits up to this long are waited out holding the order
SWEEP_SECONDS = 5.0
# A message still queued after this long is pushed again by the periodic sweep. Lost
# queue entries are also recovered at once when a worker starts and when it sees Redis
# come back, so this only needs to catch the rare rest; a short value would flood a busy
# queue with duplicate entries.
REQUEUE_AFTER = 60.0
RETENTION_SECONDS = 3600.0


class StoreUnavailable(RuntimeError):
    """The database cannot keep a message right now (the gateway answers 503)."""


def backoff(attempt: int) -> float:
    return float(min(60.0, 0.5 * 2 ** max(0, attempt - 1)))


MODEL_ACTIVE = Gauge(
    "garda_model_active", "The model version this worker answers with (registry id; 1)",
    ["model"], registry=metrics.REGISTRY,
)


def show_model(previous: str | None, current: str | None) -> None:
    """Expose the active model id on /metrics (``garda_model_active{model="..."} 1``)."""
    if previous is not None and previous != current:
        with contextlib.suppress(KeyError):
            MODEL_ACTIVE.remove(previous)
    if current is not None:
        MODEL_ACTIVE.labels(current).set(1)


class BrainRunner:
    """A brain on its own thread and event loop, in this process.

    For brains that cannot cross a process boundary (the terminal chat's, tests' stand-ins);
    deployments use :class:`bot.gateway.brain_process.ProcessBrainRunner`. Rasa's parse is
    CPU work inside an ``async`` function; run on the web app's loop it would hold up
    webhook acknowledgements. Here that loop only awaits a future. The model is loaded on
    the thread too, in the background, so the web app serves while it loads.

    With ``reload`` (a registry id -> a new brain), the runner follows the model registry:
    when a promotion or rollback changes models/registry/CURRENT it loads that version in
    the background and then swaps it in (:meth:`swap`).
    """

    def __init__(self, load: Callable[[], Any],
                 reload: Callable[[str], Any] | None = None) -> None:
        self._load = load
        self._reload = reload
        self.brain: Any = None
        self.model_id: str | None = None
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self._closed = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="garda-brain", daemon=True)
        self._watcher: threading.Thread | None = None
        if reload is not None:
            from bot.trainer.registry import ActiveWatch

            # Made before the first load, so a promotion during that load is not missed.
            self._watcher = threading.Thread(target=self._watch, args=(ActiveWatch(),),
                                             name="garda-model-watch", daemon=True)
        self._thread.start()
        if self._watcher is not None:
            self._watcher.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self.brain = self._load()
            self._serving(getattr(self.brain, "model_id", None))
        except BaseException as error:  # reported through readiness and by the workers
            self.error = error
            logger.exception("the brain could not be loaded")
        finally:
            self.ready.set()
        self._loop.run_forever()

    def _serving(self, model_id: str | None) -> None:
        show_model(self.model_id, model_id)
        self.model_id = model_id

    def _watch(self, watch: Any) -> None:
        from bot.trainer.registry import poll_seconds

        self.ready.wait()
        while not self._closed.wait(poll_seconds()):
            wanted = watch.poll()
            if wanted is not None and wanted != self.model_id:
                self.swap(wanted)

    def swap(self, model_id: str) -> bool:
        """Load ``model_id`` fully, then answer with it. A decision already under way
        holds the old brain and finishes on it; the next one gets the new brain. A model
        that fails to load leaves the old one answering (and the reason in the log)."""
        assert self._reload is not None
        try:
            brain = self._reload(model_id)
        except Exception:
            metrics.ERRORS.labels("model_load").inc()
            logger.exception("model %s could not be loaded; still answering with %s",
                             model_id, self.model_id)
            return False
        previous = self.model_id
        self.brain, self.error = brain, None
        self._serving(model_id)
        logger.warning("now answering with model %s (was %s)", model_id, previous)
        return True

    async def wait_ready(self) -> Any:
        await asyncio.to_thread(self.ready.wait)
        if self.error is not None:
            raise RuntimeError("the brain could not be loaded") from self.error
        return self.brain

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def decide(self, message: InboundRow) -> Decision:
        brain = await self.wait_ready()
        if message.kind == MEDIA:
            return brain.media(None, message.detail)
        return await asyncio.wrap_future(self._submit(brain.decide(message.text, None)))

    def failure(self, message: InboundRow) -> Decision:
        return self.brain.failure(message.text)

    def render(self, name: str) -> str:
        """An approved response as the brain serves it now (approved versions included)."""
        return str(self.brain.content.render(name))

    def escalation(self, message: InboundRow, category: str, like: Decision) -> Decision:
        return self.brain.escalation(message.text, category, None, like.confidence, like.intent)

    def close(self) -> None:
        self._closed.set()
        self._serving(None)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


class Runtime:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        queue: WorkQueue,
        channels: Mapping[str, Channel],
        *,
        role: str = "all",
        brain: Any = None,
        notifier: Notifier | None = None,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        self.settings = settings
        self.db = db
        self.queue = queue
        self.channels = dict(channels)
        self.roles = ROLES[role]
        self.brain = brain
        self.tickets = Tickets(db.engine)
        # Live notifications of ticket changes for the console (bot/admin/live.py).
        self.notifier: Notifier = notifier if notifier is not None else InProcessNotifier()
        self._listeners: list[Callable[[Ticket, str], Awaitable[None]]] = []
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._timers: set[asyncio.Task[Any]] = set()
        self._queue_was_down = False

    # -- receiving --------------------------------------------------------------------

    async def ingest(self, message: Inbound) -> Stored:
        """Keep a message and put its conversation on the queue.

        Raises StoreUnavailable or QueueUnavailable when it cannot: the webhook then
        answers 503 and the platform delivers the message again (a replay of a stored but
        not yet answered message is enqueued again, never stored twice).
        """
        try:
            stored = await asyncio.to_thread(self.db.store_inbound, message)
        except SQLAlchemyError as error:
            metrics.ERRORS.labels("store").inc()
            raise StoreUnavailable(type(error).__name__) from error
        if stored.duplicate:
            metrics.DUPLICATES.labels(message.channel).inc()
            if stored.status != QUEUED:
                return stored
        else:
            metrics.MESSAGES_IN.labels(message.channel).inc()
        try:
            await self.queue.push(stored.conversation_id)
        except QueueUnavailable:
            metrics.ERRORS.labels("queue").inc()
            raise
        return stored

    async def record_statuses(self, events: list[StatusEvent]) -> None:
        if not events:
            return
        try:
            await asyncio.to_thread(self.db.record_statuses, events)
        except SQLAlchemyError as error:
            metrics.ERRORS.labels("store").inc()
            raise StoreUnavailable(type(error).__name__) from error
        for ev in events:
            metrics.DELIVERY.labels(ev.channel, ev.status).inc()

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        for channel in self.channels.values():
            await channel.start()
        if WORKER in self.roles:
            if self.brain is None:
                raise ValueError("a worker needs a brain")
            for number in range(self.settings.worker_concurrency):
                self._spawn(self._worker(), f"worker-{number}")
            self._spawn(self._sweeper(), "sweeper")

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def stop(self) -> None:
        self._stopping.set()
        tasks = [*self._tasks, *self._timers]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for channel in self.channels.values():
            with contextlib.suppress(Exception):
                await channel.stop()
        with contextlib.suppress(Exception):
            await self.queue.close()
        with contextlib.suppress(Exception):
            await self.notifier.close()
        if self.brain is not None:
            self.brain.close()

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            await asyncio.to_thread(self.db.ping)
            checks["database"] = "ok"
        except SQLAlchemyError as error:
            checks["database"] = f"down ({type(error).__name__})"
        try:
            await self.queue.ping()
            checks["queue"] = "ok"
        except QueueUnavailable as error:
            checks["queue"] = f"down ({error})"
        if WORKER in self.roles and self.brain is not None:
            if not self.brain.ready.is_set():
                checks["brain"] = "loading"
            else:
                checks["brain"] = "ok" if self.brain.error is None else "failed to load"
        return checks

    # -- working ----------------------------------------------------------------------

    def later(self, conversation_id: int, delay: float) -> None:
        """Put a conversation back on the queue after ``delay`` seconds."""

        async def push() -> None:
            await asyncio.sleep(delay)
            with contextlib.suppress(QueueUnavailable):
                await self.queue.push(conversation_id)

        task = asyncio.create_task(push())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    async def _worker(self) -> None:
        assert self.brain is not None
        with contextlib.suppress(RuntimeError):
            await self.brain.wait_ready()
        pause = 0.5
        while not self._stopping.is_set():
            try:
                conversation_id = await self.queue.pop(timeout=1.0)
            except QueueUnavailable:
                self._queue_was_down = True
                metrics.ERRORS.labels("queue").inc()
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            pause = 0.5
            if self._queue_was_down:
                # Redis came back: what it held may be gone; SQL knows what is unanswered.
                self._queue_was_down = False
                await self.sweep(queued_after=0.0)
            if conversation_id is None:
                continue
            try:
                await self.work_on(conversation_id)
            except QueueUnavailable:
                self._queue_was_down = True
                metrics.ERRORS.labels("queue").inc()
            except SQLAlchemyError:
                metrics.ERRORS.labels("store").inc()
                logger.exception("database error while answering conversation %s",
                                 conversation_id)
                await asyncio.sleep(1.0)
                self.later(conversation_id, 1.0)
            except Exception:
                metrics.ERRORS.labels("worker").inc()
                logger.exception("error while answering conversation %s", conversation_id)

    async def work_on(self, conversation_id: int) -> None:
        """Answer every queued message of one conversation, in order, holding its lock.

        If another worker holds the lock it is answering this conversation already and
        will see the new message: after releasing the lock it looks for queued messages
        once more, so none is left behind.
        """
        async with self.queue.lock(f"conversation:{conversation_id}") as held:
            if not held:
                return
            await self._answer_all(conversation_id)
        if await asyncio.to_thread(self.db.has_queued, conversation_id):
            await self.queue.push(conversation_id)

    async def _answer_all(self, conversation_id: int) -> None:
        conversation = await asyncio.to_thread(self.db.conversation, conversation_id)
        channel = self.channels.get(conversation.channel)
        if channel is None:
            logger.error("no %s channel configured for conversation %s",
                         conversation.channel, conversation_id)
            return
        if not await self._flush(conversation, channel):
            return  # an earlier reply waits for a retry: later answers wait behind it
        while not self._stopping.is_set():
            message = await asyncio.to_thread(self.db.claim_next, conversation_id)
            if message is None:
                return
            ticket = await asyncio.to_thread(self.tickets.active, conversation_id)
            decision = await self._decide(message)
            if ticket is not None and not (decision.route == ESCALATE
                                           and decision.category in CRITICAL):
                # People have this conversation: the bot stays quiet and the message goes
                # to the ticket. A new emergency, self-harm or threat still gets its holding
                # reply and alerts the admins (it joins the ticket and raises its priority).
                await asyncio.to_thread(self.db.save_handoff, message, ticket.id)
                self.notifier.publish(ticket_event(ticket.id, "message"))
                metrics.DECISIONS.labels(message.channel, HANDOFF).inc()
                continue
            if ticket is None:
                decision = await self._second_fallback(message, decision)
            try:
                calls = channel.render(decision.reply, decision.buttons, message.as_inbound())
            except Exception:
                # A reply the channel cannot render must not leave the message unanswered
                # (or retried forever): the approved fallback, which every channel renders.
                metrics.ERRORS.labels("render").inc()
                logger.exception("could not render the reply to inbound message %s", message.id)
                assert self.brain is not None
                decision = self.brain.failure(message)
                calls = channel.render(decision.reply, (), message.as_inbound())
            rows = await asyncio.to_thread(self.db.save_decision, message, decision, calls,
                                           None, self._ticket_for(decision))
            metrics.DECISIONS.labels(message.channel, decision.route).inc()
            if decision.route == ESCALATE:
                await self._escalated(conversation_id, decision, message.id)
            # `conversation` was read after this message was stored, so its last_inbound_at
            # (WhatsApp's window) already counts it: no need to read it again.
            for row in rows:
                if not await self._send(row, conversation, channel):
                    return

    def on_escalation(self, listener: Callable[[Ticket, str], Awaitable[None]]) -> None:
        """Call ``listener(ticket, category)`` after a message opens or joins a ticket (the
        Telegram admin group posts high-priority ones). A failing listener is logged and
        never stops the reply."""
        self._listeners.append(listener)

    async def _escalated(self, conversation_id: int, decision: Decision,
                         inbound_id: int | None = None) -> None:
        metrics.ESCALATIONS.labels(str(decision.category)).inc()
        ticket = await asyncio.to_thread(self.tickets.active, conversation_id)
        if ticket is None:
            return
        opened = inbound_id is not None and ticket.inbound_id == inbound_id
        self.notifier.publish(ticket_event(ticket.id, "opened" if opened else "escalated"))
        if not self._listeners:
            return
        for listener in self._listeners:
            try:
                await listener(ticket, str(decision.category))
            except Exception:
                logger.exception("an escalation listener failed for ticket %s", ticket.id)

    async def _second_fallback(self, message: InboundRow, decision: Decision) -> Decision:
        """The bot failing to understand twice in a row in one conversation is a reason to
        bring in a person (``repeated_fallback``). Out-of-scope requests, empty messages
        and media are understood well enough and do not count."""
        if not self._not_understood(decision.route, decision.intent, message.kind,
                                    decision.reply):
            return decision
        previous = await asyncio.to_thread(self.db.previous_decided, message.conversation_id,
                                           message.id)
        if previous is None or not self._not_understood(*previous):
            return decision
        assert self.brain is not None
        return self.brain.escalation(message, REPEATED_FALLBACK, decision)

    def _not_understood(self, route: str | None, intent: str | None, kind: str,
                        reply: str | None = None) -> bool:
        if route != FALLBACK or kind != TEXT or intent == OUT_OF_SCOPE:
            return False
        # The fallback text as served now: an approved new version of it must still count.
        return reply is None or reply == self.brain.render("utter_fallback")

    @staticmethod
    def _ticket_for(decision: Decision) -> TicketSpec | None:
        if decision.route != ESCALATE or not decision.category:
            return None
        category = categories()[decision.category]
        return TicketSpec(category.name, category.priority, category.claim_within)

    async def _decide(self, message: InboundRow) -> Decision:
        assert self.brain is not None
        started = time.perf_counter()
        try:
            return await self.brain.decide(message)
        except Exception:
            metrics.ERRORS.labels("brain").inc()
            logger.exception("the brain failed on inbound message %s", message.id)
            return self.brain.failure(message)
        finally:
            metrics.BRAIN_SECONDS.observe(time.perf_counter() - started)

    async def _flush(self, conversation: ConversationRow, channel: Channel) -> bool:
        """Send the conversation's pending replies in order. False if one must wait."""
        rows = await asyncio.to_thread(self.db.pending_outbox, conversation.id)
        for row in rows:
            if not await self._send(row, conversation, channel):
                return False
        return True

    async def _send(self, row: OutboxRow, conversation: ConversationRow, channel: Channel) -> bool:
        context = SendContext(conversation.chat_id, conversation.last_inbound_at, row.is_group)
        attempts = row.attempts
        while True:
            due = row.next_attempt_at if attempts else None
            if due is not None and due > utcnow():
                wait = (due - utcnow()).total_seconds()
                if wait > WAIT_IN_PLACE:
                    self.later(conversation.id, wait)
                    return False
                await asyncio.sleep(wait)
            if not await asyncio.to_thread(self.db.mark_sending, row.id):
                return True  # another worker took it (its lock lapsed); it is theirs now
            attempts += 1
            try:
                result = await channel.send(Outgoing(row.method, row.payload), context)
            except SendError as error:
                metrics.MESSAGES_OUT.labels(row.channel, "retry" if error.retryable
                                            else "failed").inc()
                if not error.retryable or attempts >= MAX_ATTEMPTS:
                    logger.warning("reply %s not delivered: %s", row.id, error.reason)
                    await asyncio.to_thread(self.db.mark_failed, row.id, error.reason)
                    return True
                wait = error.retry_after if error.retry_after is not None else backoff(attempts)
                due_at = utcnow() + dt.timedelta(seconds=wait)
                await asyncio.to_thread(self.db.mark_retry, row.id, due_at, error.reason)
                row = dataclasses.replace(row, next_attempt_at=due_at, attempts=attempts)
                continue
            except Exception as error:
                # Unknown outcome: the platform may have the message. Never send it again.
                metrics.MESSAGES_OUT.labels(row.channel, "unknown").inc()
                logger.exception("reply %s: unexpected error while sending", row.id)
                await asyncio.to_thread(self.db.mark_failed, row.id,
                                        f"unknown outcome: {type(error).__name__}")
                return True
            await asyncio.to_thread(self.db.mark_sent, row.id, result.platform_message_id)
            metrics.MESSAGES_OUT.labels(row.channel, "sent").inc()
            if row.received_at is not None:
                metrics.REPLY_SECONDS.labels(row.channel).observe(
                    (utcnow() - row.received_at).total_seconds())
            return True

    # -- housekeeping -----------------------------------------------------------------

    async def sweep(self, queued_after: float = REQUEUE_AFTER) -> int:
        """Enqueue conversations whose work the queue may have lost; refresh the depth gauge."""
        try:
            ids = await asyncio.to_thread(self.db.recover, queued_after=queued_after)
            metrics.QUEUE_DEPTH.set(await asyncio.to_thread(self.db.backlog))
        except SQLAlchemyError:
            metrics.ERRORS.labels("store").inc()
            return 0
        for conversation_id in ids:
            try:
                await self.queue.push(conversation_id)
            except QueueUnavailable:
                self._queue_was_down = True
                return 0
        return len(ids)

    async def _sweeper(self) -> None:
        # Messages stored before this worker started (a restart, a crash) first, at once.
        await self.sweep(queued_after=0.0)
        last_purge = 0.0
        while not self._stopping.is_set():
            await asyncio.sleep(SWEEP_SECONDS)
            await self.sweep()
            if time.monotonic() - last_purge > RETENTION_SECONDS:
                last_purge = time.monotonic()
                try:
                    await asyncio.to_thread(self.db.purge, self.settings.retention_days)
                except SQLAlchemyError:
                    metrics.ERRORS.labels("store").inc()
