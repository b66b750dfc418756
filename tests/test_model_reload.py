"""A promoted (or rolled-back) model is picked up by running workers without dropping or
doubling a message.

First the in-process runner (BrainRunner) under the real Runtime, with stand-in models
whose answers say which model gave them: cheap, exact, and with a model that fails to
load. Then the real thing: `garda run` (the brain in a child process) with the Telegram
stub, a steady stream of webhook messages, `garda model promote` and `garda model
rollback` while they flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.brain.decision import Button
from bot.brain.pipeline import Brain
from bot.brain.ranking import Routed
from bot.channels.base import TEXT, Inbound, Outgoing, SendContext, SendResult
from bot.config import Settings
from bot.content import Content
from bot.gateway.runtime import MODEL_ACTIVE, BrainRunner, Runtime
from bot.store import models
from bot.store.db import Database
from bot.store.queue import InProcessQueue, RedisQueue
from bot.trainer.registry import MODEL, PASSED, SAFETY, Registry

ROOT = Path(__file__).resolve().parent.parent
TOPICS = {"A": "faq/ktp_baru", "B": "faq/kartu_keluarga"}


class ModelParser:
    """Stands in for one Rasa model: every message is a question about this model's topic."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

    async def parse_message(self, text: str) -> dict[str, Any]:
        await asyncio.sleep(0.005)
        return {"garda": Routed("answer", self.topic, 0.99).as_dict()}


class ReplyChannel:
    name = "telegram"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []  # chat, the message, the reply

    def render(self, reply: str, buttons: Sequence[Button], inbound: Inbound) -> list[Outgoing]:
        return [Outgoing("sendMessage", {"text": reply, "about": inbound.text})]

    async def send(self, call: Outgoing, context: SendContext) -> SendResult:
        self.sent.append((context.chat_id, call.payload["about"], call.payload["text"]))
        return SendResult(str(len(self.sent)))

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


@pytest.fixture(params=["embedded", pytest.param("servers", marks=pytest.mark.servers)])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    if request.param == "embedded":
        return f"sqlite:///{tmp_path / 'garda.db'}", None
    return request.getfixturevalue("postgres_url"), request.getfixturevalue("redis_url")


def placeholder_entry(registry: Registry, label: str) -> str:
    entry = registry.new_entry(label * 64, {"trained_by": "tester", "label": label})
    (entry.folder / MODEL).write_bytes(b"stand-in")
    (entry.folder / SAFETY).write_bytes(b"stand-in")
    registry.set_status(entry, PASSED)
    return entry.id


def test_promotion_and_rollback_swap_the_brain_while_messages_flow(
        stores: tuple[str, str | None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry(tmp_path / "registry")
    monkeypatch.setenv("GARDA_REGISTRY_DIR", str(registry.root))
    monkeypatch.setenv("GARDA_MODEL_POLL_SECONDS", "0.05")
    ids = {label: placeholder_entry(registry, label) for label in ("A", "B", "X")}
    label_of = {v: k for k, v in ids.items()}
    registry.promote(ids["A"], "tester")
    content = Content.load()
    replies = {content.render(f"utter_{topic}"): label for label, topic in TOPICS.items()}
    loads: list[str] = []

    def load(model_id: str) -> Brain:
        loads.append(model_id)
        label = label_of[model_id]
        time.sleep(0.3)  # a model takes a while to load: the old one answers meanwhile
        if label == "X":
            raise RuntimeError("stand-in for a corrupt archive")
        brain = Brain(ModelParser(TOPICS[label]), content)
        brain.model_id = model_id
        return brain

    database_url, redis_url = stores
    db = Database(database_url)
    db.upgrade()
    queue = RedisQueue(redis_url) if redis_url else InProcessQueue()
    channel = ReplyChannel()
    runner = BrainRunner(lambda: load(registry.active_id()), reload=load)
    settings = Settings(database_url=database_url, redis_url=redis_url)
    runtime = Runtime(settings, db, queue, {channel.name: channel}, brain=runner)
    total = 150

    def answered_by(label: str) -> int:
        return sum(replies.get(reply) == label for _, _, reply in channel.sent)

    async def until(predicate: Any, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        await runtime.start()
        try:
            async def feed() -> None:
                for i in range(total):
                    await runtime.ingest(Inbound("telegram", f"m{i}", f"chat{i % 6}", TEXT,
                                                 f"pesan {i}"))
                    await asyncio.sleep(0.02)

            feeder = asyncio.create_task(feed())
            await until(lambda: answered_by("A") >= 5)
            registry.promote(ids["B"], "tester")
            await until(lambda: runner.model_id == ids["B"])
            await until(lambda: answered_by("B") >= 5)
            registry.rollback("tester", "back to A")
            await until(lambda: runner.model_id == ids["A"])
            after_rollback = len(channel.sent)
            await until(lambda: len(channel.sent) >= after_rollback + 5)
            registry.promote(ids["X"], "tester")  # fails to load: A keeps answering
            await until(lambda: loads.count(ids["X"]) == 1)
            await asyncio.sleep(0.5)
            await feeder
            await until(lambda: len(channel.sent) >= total)
            await asyncio.sleep(0.3)  # time for a doubled reply to show up
            shown.update(s.labels["model"] for m in MODEL_ACTIVE.collect() for s in m.samples)
            final.append(runner.model_id)
        finally:
            await runtime.stop()

    shown: set[str] = set()
    final: list[str | None] = []
    asyncio.run(scenario())
    about = Counter(message for _, message, _ in channel.sent)
    assert about == Counter(f"pesan {i}" for i in range(total))  # each answered, once
    assert answered_by("A") + answered_by("B") == total
    assert answered_by("A") > 10 and answered_by("B") >= 5
    # Each conversation's answers in order, across the swaps.
    for chat in {c for c, _, _ in channel.sent}:
        numbers = [int(m.split()[1]) for c, m, _ in channel.sent if c == chat]
        assert numbers == sorted(numbers)
    # After the rollback, B never answered again.
    labels = [replies[reply] for _, _, reply in channel.sent]
    last_b = max(i for i, label in enumerate(labels) if label == "B")
    assert set(labels[last_b + 1:]) == {"A"}
    assert final == [ids["A"]] and loads == [ids["A"], ids["B"], ids["A"], ids["X"]]
    assert any(f"model {ids['X']} could not be loaded" in r.getMessage()
               for r in caplog.records)
    assert shown == {ids["A"]}  # /metrics: the active model, and only it
    with db.engine.connect() as conn:
        from sqlalchemy import func, select

        assert conn.execute(select(func.count()).select_from(models.outbox)).scalar() == total
    db.dispose()


# -- the real gateway ------------------------------------------------------------------------


def active_model(url: str) -> str | None:
    with contextlib.suppress(httpx.HTTPError):
        found = re.search(r'^garda_model_active\{model="([^"]+)"\} 1\.0$',
                          httpx.get(f"{url}/metrics", timeout=5).text, re.MULTILINE)
        return found.group(1) if found else None
    return None


@pytest.mark.model
def test_garda_run_swaps_models_while_webhook_messages_flow_and_answers_each_once(
        trained_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry holds two versions that are the same archive (a hard link of the
    setup-trained model) and the same saved safety classifier under two ids: which one
    answers is told by /metrics, not by the replies. Promotion and rollback go through
    the `garda model` commands, as an operator would."""
    from stubs import telegram as tg
    from test_gateway import KTP_QUESTION, deployment, wait_for

    from bot.safety.triage import default_triage
    from bot.trainer.registry import link_or_copy
    from bot.training import stored_meta

    registry = Registry(tmp_path / "registry")
    saved = tmp_path / "safety.joblib"
    default_triage().save(saved)
    ids = []
    for _ in range(2):
        entry = registry.new_entry(stored_meta()["data_hash"], {"trained_by": "tester"})
        link_or_copy(trained_model, entry.model_path)
        link_or_copy(saved, entry.safety_path)
        registry.set_status(entry, PASSED)
        ids.append(entry.id)
    first, second = ids
    registry.promote(first, "tester")
    monkeypatch.setenv("GARDA_REGISTRY_DIR", str(registry.root))
    monkeypatch.setenv("GARDA_MODEL_POLL_SECONDS", "0.5")

    def garda_model(*args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "bot.cli", "model", *args], cwd=ROOT,
                              env={**os.environ, "GARDA_USER": "operator"},
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr

    chats = [9101, 9102, 9103, 9104]
    sent: Counter[int] = Counter()
    refused: list[int] = []
    stop = threading.Event()

    with deployment("reload", tmp_path, database_url=f"sqlite:///{tmp_path / 'garda.db'}",
                    redis=None) as garda:
        assert active_model(garda.url) == first

        def stream() -> None:
            update = 70000
            while not stop.is_set():
                chat = chats[update % len(chats)]
                status = garda.post_telegram(tg.text_update(update, chat, KTP_QUESTION)
                                             ).status_code
                if status == 200:
                    sent[chat] += 1
                else:
                    refused.append(status)
                update += 1
                time.sleep(0.15)

        sender = threading.Thread(target=stream, daemon=True)
        sender.start()
        try:
            wait_for(lambda: len(garda.telegram.sent()) >= 5, timeout=120, what="replies")
            garda_model("promote", second)
            wait_for(lambda: active_model(garda.url) == second, timeout=600,
                     what=f"{second} to be active")
            at_swap = len(garda.telegram.sent())
            wait_for(lambda: len(garda.telegram.sent()) >= at_swap + 5, timeout=120,
                     what=f"replies from {second}")
            garda_model("rollback", "--reason", "the test goes back")
            wait_for(lambda: active_model(garda.url) == first, timeout=600,
                     what=f"{first} to be active again")
            at_swap = len(garda.telegram.sent())
            wait_for(lambda: len(garda.telegram.sent()) >= at_swap + 5, timeout=120,
                     what=f"replies from {first}")
        finally:
            stop.set()
            sender.join(timeout=30)
        assert refused == []
        total = sum(sent.values())
        wait_for(lambda: len(garda.telegram.sent()) >= total, timeout=180,
                 what="every message to be answered")
        time.sleep(2.0)  # time for a doubled reply to show up
        for chat in chats:
            assert len(garda.telegram_sent_to(chat)) == sent[chat], chat
        assert garda.sql("SELECT count(*) FROM inbound")[0][0] == total
        assert garda.sql("SELECT count(*) FROM inbound i WHERE (SELECT count(*) FROM outbox o "
                         "WHERE o.inbound_id = i.id AND o.status = 'sent') != 1")[0][0] == 0
        log = garda.log.read_text(errors="replace")
        assert f"now answering with model {second}" in log
        assert f"now answering with model {first} (was {second})" in log
    actions = [(r["action"], r["id"], r["by"]) for r in registry.history()]
    assert actions == [("promote", first, "tester"), ("promote", second, "operator"),
                       ("rollback", first, "operator")]
