"""Handoff: an escalation opens a ticket and the bot steps back until people give the
conversation back; two failures in a row bring a person in.

Through the real runtime (store, queue, worker, outbox) on SQLite and, where available,
PostgreSQL with Redis, with stand-ins for the model and the safety classifier (through
the real model: tests/test_safety.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any, ClassVar

from sqlalchemy import select
from test_runtime import KeywordParser, RecordingChannel, make_runtime, msg, run, stores, until

from bot.brain.pipeline import Brain
from bot.content import Content
from bot.gateway.runtime import BrainRunner, Runtime
from bot.safety.triage import NONE, Verdict
from bot.store import models
from bot.store.tickets import Tickets

__all__ = ["stores"]  # the fixture, imported for its parametrisation


class KeywordSafety:
    """Stands in for the safety classifier: a few words mean a category."""

    WORDS: ClassVar[dict[str, str]] = {
        "kebakaran": "emergency", "petugas": "human_request", "goblok": "abuse"}

    def classify(self, text: Any, normalized: str | None = None) -> Verdict:
        for word, category in self.WORDS.items():
            if word in str(text).lower():
                return Verdict(category, 0.99, category)
        return Verdict(None, 0.9, NONE)


def runtime_for(stores_: Any, channel: RecordingChannel) -> Runtime:
    runtime = make_runtime(stores_, channel)
    runtime.brain = BrainRunner(
        lambda: Brain(KeywordParser(), Content.load(), safety=KeywordSafety()))  # type: ignore[arg-type]
    return runtime


def replies(runtime: Runtime, conversation_id: int) -> list[str]:
    with runtime.db.engine.connect() as conn:
        rows = conn.execute(select(models.outbox.c.payload).where(
            models.outbox.c.conversation_id == conversation_id).order_by(models.outbox.c.id))
        return [json.loads(r.payload)["text"] for r in rows]


def test_the_bot_steps_back_while_people_have_the_conversation_and_resumes_after(
        stores) -> None:
    channel = RecordingChannel()
    runtime = runtime_for(stores, channel)
    content = Content.load()
    tickets = Tickets(runtime.db.engine)

    async def scenario() -> None:
        await runtime.start()
        try:
            await runtime.ingest(msg("h1", "citizen", "min saya mau bicara dengan petugas"))
            await until(lambda: len(channel.sent) == 1)
            await runtime.ingest(msg("h2", "citizen", "cara bikin ktp?"))
            await until(lambda: runtime.db.backlog() == 0)
            await asyncio.sleep(0.3)
            assert len(channel.sent) == 1  # not answered: people have it
            ticket = tickets.active(1)
            assert ticket is not None and ticket.category == "human_request"
            tickets.claim(ticket.id, "ani")
            tickets.hand_back(ticket.id, "ani", "pertanyaan KTP, bot bisa menjawab")
            await runtime.ingest(msg("h3", "citizen", "cara bikin ktp?"))
            await until(lambda: len(channel.sent) == 2)
        finally:
            await runtime.stop()

    run(scenario())
    assert replies(runtime, 1) == [content.render("utter_escalate_human_request"),
                                   content.render("utter_faq/ktp_baru")]
    events = [(e.actor, e.action) for e in tickets.events(1)]
    assert events == [("garda", "opened"), ("garda", "message"), ("ani", "claimed"),
                      ("ani", "handed_back")]


def test_an_emergency_inside_a_paused_conversation_still_alerts_and_gets_112(stores) -> None:
    channel = RecordingChannel()
    runtime = runtime_for(stores, channel)
    content = Content.load()
    tickets = Tickets(runtime.db.engine)

    async def scenario() -> None:
        await runtime.start()
        try:
            await runtime.ingest(msg("e1", "citizen", "admin goblok"))
            await until(lambda: len(channel.sent) == 1)
            await runtime.ingest(msg("e2", "citizen", "TOLONG rumah sebelah kebakaran"))
            await until(lambda: len(channel.sent) == 2)
        finally:
            await runtime.stop()

    run(scenario())
    assert replies(runtime, 1)[1] == content.render("utter_escalate_emergency")
    assert replies(runtime, 1)[1].startswith("Jika ada nyawa dalam bahaya saat ini, segera "
                                             "telepon 112")
    queue = tickets.queue()
    assert len(queue) == 1 and queue[0].priority == 1  # abuse (3) raised by the emergency
    assert [(e.action, e.detail) for e in tickets.events(queue[0].id)] == [
        ("opened", "abuse"), ("escalated", "emergency")]


def test_two_failures_in_a_row_bring_a_person_in(stores) -> None:
    channel = RecordingChannel()
    runtime = runtime_for(stores, channel)
    content = Content.load()
    tickets = Tickets(runtime.db.engine)

    async def scenario() -> None:
        await runtime.start()
        try:
            for i, text in enumerate(("qwerty asdf", "cara bikin ktp?", "zxcv uiop",
                                      "lorem ipsum")):
                await runtime.ingest(msg(f"f{i}", "citizen", text))
                await until(lambda n=i: len(channel.sent) == n + 1)
        finally:
            await runtime.stop()

    run(scenario())
    fallback = content.render("utter_fallback")
    assert replies(runtime, 1) == [fallback, content.render("utter_faq/ktp_baru"), fallback,
                                   content.render("utter_escalate_repeated_fallback")]
    ticket = tickets.active(1)
    assert ticket is not None and ticket.category == "repeated_fallback"


def test_a_new_message_after_resolution_starts_fresh(stores) -> None:
    channel = RecordingChannel()
    runtime = runtime_for(stores, channel)
    tickets = Tickets(runtime.db.engine)

    async def scenario() -> None:
        await runtime.start()
        try:
            await runtime.ingest(msg("r1", "citizen", "sambungkan ke petugas"))
            await until(lambda: len(channel.sent) == 1)
            ticket = tickets.active(1)
            assert ticket is not None
            tickets.claim(ticket.id, "ani")
            tickets.resolve(ticket.id, "ani", "sudah ditelepon")
            await runtime.ingest(msg("r2", "citizen", "cara bikin ktp?"))
            await until(lambda: len(channel.sent) == 2)
        finally:
            await runtime.stop()

    run(scenario())
    assert tickets.active(1) is None
    assert dataclasses.asdict(tickets.get(1))["status"] == "resolved"


def test_the_terminal_chat_shows_the_handoff_and_the_admins_reply(tmp_path) -> None:
    """`garda chat`: an escalated local conversation does not block the prompt, and what
    an admin answers (console or Telegram group: db.admin_reply + queue) is printed."""
    import threading

    from bot.channels.local import LocalChannel
    from bot.config import Settings
    from bot.gateway.local import HANDED_TO_PEOPLE, chat_session
    from bot.store.db import Database
    from bot.store.queue import InProcessQueue

    db = Database(f"sqlite:///{tmp_path / 'garda.db'}")
    db.upgrade()
    local = LocalChannel()
    runtime = Runtime(Settings(database_url=db.url), db, InProcessQueue(), {"local": local},
                      brain=BrainRunner(lambda: Brain(KeywordParser(), Content.load(),
                                                      safety=KeywordSafety())))  # type: ignore[arg-type]
    lines = ["saya mau bicara dengan petugas", "halo? ada orang?"]
    written: list[str] = []
    admin_answered = threading.Event()

    def read(prompt: str) -> str:
        if lines:
            return lines.pop(0)
        admin_answered.wait(timeout=20)
        raise EOFError

    async def admin() -> None:
        await until(lambda: any(HANDED_TO_PEOPLE in w for w in written))
        ticket = Tickets(db.engine).active(1)
        assert ticket is not None
        Tickets(db.engine).claim(ticket.id, "ani")
        db.admin_reply(1, ticket.id, "ani", local.render("Halo, saya Ani. Ada yang bisa dibantu?",
                                                         (), msg("x")))
        await runtime.queue.push(1)
        await until(lambda: any("saya Ani" in w for w in written))
        admin_answered.set()

    async def scenario() -> None:
        await asyncio.gather(chat_session(runtime, local, read, written.append), admin())

    run(scenario())
    shown = "\n".join(written)
    assert Content.load().render("utter_escalate_human_request").splitlines()[0] in shown
    assert HANDED_TO_PEOPLE in shown
    assert shown.index(HANDED_TO_PEOPLE) < shown.index("Halo, saya Ani")


def test_the_terminal_chat_serves_the_console_beside_it(tmp_path) -> None:
    import httpx
    from stubs import free_port

    from bot.config import Settings
    from bot.gateway.local import chat_loop

    port = free_port()
    seen: dict[str, int] = {}

    def read(prompt: str) -> str:
        seen["login"] = httpx.get(f"http://127.0.0.1:{port}/admin/login", timeout=5).status_code
        raise EOFError

    written: list[str] = []
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'chat.db'}", host="127.0.0.1",
                        port=port)
    brain = Brain(KeywordParser(), Content.load(), safety=KeywordSafety())  # type: ignore[arg-type]
    chat_loop(brain, read, written.append, settings, console=True)
    assert seen["login"] == 200
    assert any(f"http://127.0.0.1:{port}/admin" in line for line in written)


def test_an_approved_new_fallback_text_still_counts_as_not_understood(tmp_path) -> None:
    """The runtime recognises a fallback by the text served: once a new version of
    ``utter_fallback`` is approved (bot/content_versions.py), two of them in a row must
    still bring a person in."""
    from bot.content_versions import ContentVersions

    url = f"sqlite:///{tmp_path / 'garda.db'}"
    channel = RecordingChannel()
    runtime = make_runtime((url, None), channel)
    runtime.brain.close()
    runtime.brain = BrainRunner(lambda: Brain(
        KeywordParser(), Content.load(), safety=KeywordSafety()  # type: ignore[arg-type]
    ).follow_approvals(url, poll_seconds=0))
    versions = ContentVersions(runtime.db.engine)
    new_text = "Maaf, pesan Anda belum kami pahami. Coba tulis dengan kata lain, ya."
    versions.approve(versions.propose("answer", "utter_fallback", new_text, by="sari").id,
                     by="budi")

    async def scenario() -> None:
        await runtime.start()
        try:
            for i, text in enumerate(("qwerty asdf", "zxcv uiop")):
                await runtime.ingest(msg(f"n{i}", "citizen", text))
                await until(lambda n=i: len(channel.sent) == n + 1)
        finally:
            await runtime.stop()

    run(scenario())
    assert replies(runtime, 1) == [new_text, Content.load().render(
        "utter_escalate_repeated_fallback")]
