"""Handoff through the real model: pause, an emergency inside the pause, resume.

tests/test_handoff.py covers the handoff rules with stand-ins for the model and the
safety classifier, so each rule is pinned to one cause. Here the same worker runs the
brain the service runs (the trained Rasa model, the safety classifier fitted from
data/safety/, the hoax registry), on SQLite and, where available, PostgreSQL with Redis:
what escalates, what pauses and what resumes is decided by the models themselves.

The texts are plain, unambiguous examples of their kind written for this test; the
held-out sets (tests/nlu, tests/safety) measure the models, this test measures the
plumbing between them and the store.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import select
from test_runtime import RecordingChannel, make_runtime, msg, run, stores, until

from bot.content import Content
from bot.gateway.runtime import BrainRunner, Runtime
from bot.store import models
from bot.store.tickets import Tickets

__all__ = ["stores"]  # the fixture, imported for its parametrisation

ASKS_FOR_A_PERSON = "saya mau ngobrol sama admin manusia aja, bukan bot"
ROUTINE = "jam buka kantor dukcapil kapan?"
EMERGENCY = "Tolong! Rumah tetangga saya terbakar, apinya sudah besar, ada anak di dalam"


def runtime_with(brain: Any, stores_: Any, channel: RecordingChannel) -> Runtime:
    runtime = make_runtime(stores_, channel)
    runtime.brain.close()
    runtime.brain = BrainRunner(lambda: brain)
    return runtime


def replies(runtime: Runtime, conversation_id: int) -> list[str]:
    with runtime.db.engine.connect() as conn:
        rows = conn.execute(select(models.outbox.c.payload).where(
            models.outbox.c.conversation_id == conversation_id).order_by(models.outbox.c.id))
        return [json.loads(r.payload)["text"] for r in rows]


def routes(runtime: Runtime) -> list[tuple[str | None, str | None]]:
    with runtime.db.engine.connect() as conn:
        rows = conn.execute(select(models.inbound.c.route, models.inbound.c.category)
                            .order_by(models.inbound.c.id))
        return [(r.route, r.category) for r in rows]


def test_the_real_model_pauses_for_people_keeps_alerting_and_resumes(brain, stores) -> None:
    channel = RecordingChannel()
    runtime = runtime_with(brain, stores, channel)
    content = Content.load()
    tickets = Tickets(runtime.db.engine)

    async def scenario() -> None:
        await runtime.start()
        try:
            # Before anything: a routine question is answered by the model.
            await runtime.ingest(msg("q0", "citizen", ROUTINE))
            await until(lambda: len(channel.sent) == 1)
            # The citizen asks for a person: holding reply, a ticket, the bot steps back.
            await runtime.ingest(msg("q1", "citizen", ASKS_FOR_A_PERSON))
            await until(lambda: len(channel.sent) == 2)
            await runtime.ingest(msg("q2", "citizen", ROUTINE))
            await until(lambda: runtime.db.backlog() == 0)
            await asyncio.sleep(0.5)
            assert len(channel.sent) == 2, "the bot answered a conversation people hold"
            # An emergency inside the pause still gets 112 at once and raises the ticket.
            await runtime.ingest(msg("q3", "citizen", EMERGENCY))
            await until(lambda: len(channel.sent) == 3)
            ticket = tickets.active(1)
            assert ticket is not None
            assert tickets.claim(ticket.id, "ani").won
            tickets.hand_back(ticket.id, "ani", "sudah ditangani, pertanyaan rutin ke bot")
            # Handed back: the same routine question is answered by the model again.
            await runtime.ingest(msg("q4", "citizen", ROUTINE))
            await until(lambda: len(channel.sent) == 4)
        finally:
            await runtime.stop()

    run(scenario())
    answer = content.render("utter_faq/jam_layanan")
    assert replies(runtime, 1) == [
        answer,
        content.render("utter_escalate_human_request"),
        content.render("utter_escalate_emergency"),
        answer,
    ]
    assert routes(runtime) == [
        ("answer", None), ("escalate", "human_request"), ("handoff", None),
        ("escalate", "emergency"), ("answer", None)]
    ticket = tickets.get(1)
    assert (ticket.category, ticket.priority, ticket.status) == (
        "human_request", 1, "handed_back")
    assert [(e.actor, e.action, e.detail) for e in tickets.events(1)][:4] == [
        ("garda", "opened", "human_request"), ("garda", "message", "3"),
        ("garda", "escalated", "emergency"), ("ani", "claimed", None)]
