"""The message path behind the webhooks (store, queue, worker, outbox) with a stand-in model.

Each scenario runs against the embedded default (SQLite, in-process queue) and, where the
servers are available, against PostgreSQL with Redis. End to end over HTTP with the real
model and the platform stubs: test_gateway.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.brain.decision import Button
from bot.brain.pipeline import Brain
from bot.brain.ranking import Routed
from bot.channels.base import MEDIA, TEXT, Inbound, Outgoing, SendContext, SendError, SendResult
from bot.config import Settings
from bot.content import Content
from bot.gateway.runtime import BrainRunner, Runtime
from bot.store import models
from bot.store.db import Database
from bot.store.queue import InProcessQueue, RedisQueue


class KeywordParser:
    """Stands in for Rasa: "ktp" is a KTP question, anything else is not understood."""

    async def parse_message(self, text: str) -> dict[str, Any]:
        if "ktp" in text.lower():
            return {"garda": Routed("answer", "faq/ktp_baru", 0.99).as_dict()}
        return {"garda": Routed("fallback", None, 0.1).as_dict()}


class RecordingChannel:
    """A channel that records what it sends; failures and slowness can be scripted."""

    name = "telegram"

    def __init__(self, delay: float = 0.0) -> None:
        self.sent: list[tuple[str, str, float]] = []
        self.failures: list[SendError] = []
        self.delay = delay
        self.slow_chats: set[str] = set()
        self.fallback = Content.load().render("utter_fallback")

    def render(self, reply: str, buttons: Sequence[Button], inbound: Inbound) -> list[Outgoing]:
        if "unrenderable" in inbound.text and reply != self.fallback:
            raise ValueError("this reply cannot be rendered")
        return [Outgoing("sendMessage", {"text": reply, "about": inbound.text})]

    async def send(self, call: Outgoing, context: SendContext) -> SendResult:
        if context.chat_id in self.slow_chats:
            await asyncio.sleep(self.delay)
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((context.chat_id, call.payload["about"], time.monotonic()))
        return SendResult(str(len(self.sent)))

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


@pytest.fixture(params=["embedded", pytest.param("servers", marks=pytest.mark.servers)])
def stores(request: pytest.FixtureRequest, tmp_path) -> tuple[str, str | None]:
    if request.param == "embedded":
        return f"sqlite:///{tmp_path / 'garda.db'}", None
    return request.getfixturevalue("postgres_url"), request.getfixturevalue("redis_url")


def make_runtime(stores: tuple[str, str | None], channel: Any, **overrides: Any) -> Runtime:
    database_url, redis_url = stores
    settings = dataclasses.replace(Settings(database_url=database_url, redis_url=redis_url),
                                   **overrides)
    db = Database(database_url)
    db.upgrade()
    queue = RedisQueue(redis_url) if redis_url else InProcessQueue()
    brain = BrainRunner(lambda: Brain(KeywordParser(), Content.load()))
    return Runtime(settings, db, queue, {channel.name: channel}, brain=brain)


async def until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


def msg(platform_id: str, chat: str = "100", text: str = "cara bikin ktp?") -> Inbound:
    return Inbound("telegram", platform_id, chat, TEXT, text)


def count(db: Database, table: Any) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_same_message_delivered_five_times_is_stored_and_answered_once(stores) -> None:
    channel = RecordingChannel()
    runtime = make_runtime(stores, channel)

    async def scenario() -> None:
        await runtime.start()
        try:
            for _ in range(3):
                await runtime.ingest(msg("u1"))
            await asyncio.gather(*(runtime.ingest(msg("u2")) for _ in range(5)))
            await until(lambda: len(channel.sent) >= 2)
            await asyncio.sleep(0.5)  # time for a wrongly doubled reply to show up
        finally:
            await runtime.stop()

    run(scenario())
    assert count(runtime.db, models.inbound) == 2
    assert count(runtime.db, models.outbox) == 2
    assert len(channel.sent) == 2


def test_twenty_messages_from_one_sender_are_answered_in_order_while_others_proceed(
        stores) -> None:
    channel = RecordingChannel(delay=0.05)
    channel.slow_chats.add("slow")
    runtime = make_runtime(stores, channel)

    async def scenario() -> None:
        await runtime.start()
        try:
            await asyncio.gather(*(runtime.ingest(msg(f"s{i}", "slow", f"ktp {i}"))
                                   for i in range(20)))
            await runtime.ingest(msg("other", "fast", "ktp lain"))
            await until(lambda: len(channel.sent) == 21)
        finally:
            await runtime.stop()

    run(scenario())
    with runtime.db.engine.connect() as conn:
        arrival = [r.text for r in conn.execute(
            select(models.inbound.c.text).where(models.inbound.c.platform_id.like("s%"))
            .order_by(models.inbound.c.id))]
    answered = [about for chat, about, _ in channel.sent if chat == "slow"]
    assert answered == arrival
    # The other sender was answered long before the slow conversation finished.
    fast_at = next(t for chat, _, t in channel.sent if chat == "fast")
    assert fast_at < channel.sent[-1][2] or channel.sent[-1][0] == "fast"
    assert [chat for chat, _, _ in channel.sent].index("fast") < 20


def test_a_retryable_failure_is_sent_after_the_wait_once_and_a_refusal_moves_on(stores) -> None:
    channel = RecordingChannel()
    channel.failures = [SendError("429", retryable=True, retry_after=0.3)]
    runtime = make_runtime(stores, channel)

    async def scenario() -> float:
        await runtime.start()
        try:
            started = time.monotonic()
            await runtime.ingest(msg("r1"))
            await until(lambda: len(channel.sent) == 1)
            waited = channel.sent[0][2] - started
            channel.failures = [SendError("403 blocked", retryable=False)]
            await runtime.ingest(msg("r2", text="ktp 2"))
            await runtime.ingest(msg("r3", text="ktp 3"))
            await until(lambda: len(channel.sent) == 2)
            await asyncio.sleep(0.3)
            return waited
        finally:
            await runtime.stop()

    waited = run(scenario())
    assert waited >= 0.3
    assert [about for _, about, _ in channel.sent] == ["cara bikin ktp?", "ktp 3"]
    with runtime.db.engine.connect() as conn:
        statuses = dict(conn.execute(
            select(models.inbound.c.platform_id, models.outbox.c.status)
            .join(models.inbound, models.inbound.c.id == models.outbox.c.inbound_id)).all())
    assert statuses == {"r1": "sent", "r2": "failed", "r3": "sent"}


def test_media_gets_the_approved_text_only_reply(stores) -> None:
    channel = RecordingChannel()
    runtime = make_runtime(stores, channel)

    async def scenario() -> None:
        await runtime.start()
        try:
            await runtime.ingest(Inbound("telegram", "m1", "5", MEDIA, "", detail="photo"))
            await until(lambda: len(runtime.db.outbox_for(1)) == 1 and channel.sent)
        finally:
            await runtime.stop()

    run(scenario())
    assert runtime.db.outbox_for(1)[0].payload["text"] == Content.load().render("utter_media")


def test_a_message_stored_but_never_queued_is_found_and_answered(stores) -> None:
    channel = RecordingChannel()
    runtime = make_runtime(stores, channel)

    async def scenario() -> None:
        # As if the queue lost it: stored in SQL, never pushed.
        runtime.db.store_inbound(msg("lost"), now=models.utcnow() - dt.timedelta(seconds=120))
        await runtime.start()
        try:
            assert await runtime.sweep() >= 1
            await until(lambda: len(channel.sent) == 1)
        finally:
            await runtime.stop()

    run(scenario())
    assert channel.sent[0][1] == "cara bikin ktp?"


def test_a_reply_the_channel_cannot_render_becomes_the_approved_fallback(stores) -> None:
    channel = RecordingChannel()
    runtime = make_runtime(stores, channel)

    async def scenario() -> None:
        await runtime.start()
        try:
            await runtime.ingest(msg("x1", text="ktp unrenderable"))
            await runtime.ingest(msg("x2", text="ktp lagi"))
            await until(lambda: len(channel.sent) == 2)
        finally:
            await runtime.stop()

    run(scenario())
    texts = [row.payload["text"] for i in (1, 2) for row in runtime.db.outbox_for(i)]
    assert texts[0] == channel.fallback
    assert texts[1] == Content.load().render("utter_faq/ktp_baru")


def test_retention_empties_old_content_and_keeps_replay_ids_for_eight_days(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    db.upgrade()
    now = models.utcnow()
    db.store_inbound(msg("old"), now=now - dt.timedelta(days=10))
    db.store_inbound(msg("week"), now=now - dt.timedelta(days=5))
    db.store_inbound(msg("new"), now=now)
    result = db.purge(retention_days=3, now=now)
    assert result == {"emptied": 2, "deleted": 1}  # "old" emptied, then deleted
    with db.engine.connect() as conn:
        rows = dict(conn.execute(select(models.inbound.c.platform_id, models.inbound.c.text)).all())
    assert rows == {"week": None, "new": "cara bikin ktp?"}
    # The replayed id of the emptied message is still a duplicate, not a new message.
    assert db.store_inbound(msg("week")).duplicate


@pytest.mark.servers
def test_redis_queue_lock_admits_one_holder_across_clients(redis_url: str) -> None:
    async def scenario() -> list[bool]:
        first, second = RedisQueue(redis_url), RedisQueue(redis_url)
        try:
            async with first.lock("conversation:1") as a:
                async with second.lock("conversation:1") as b:
                    held = [a, b]
            async with second.lock("conversation:1") as c:
                held.append(c)
            await first.push(7)
            held.append(await second.pop(1.0) == 7)
            return held
        finally:
            await first.close()
            await second.close()

    assert run(scenario()) == [True, False, True, True]
