"""The admin queue's record: tickets opened with their decision, the event log, the claim.

On the embedded default (SQLite) and, where the servers are available, on PostgreSQL.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import threading

import pytest
from sqlalchemy import select

from bot.brain.decision import Decision
from bot.channels.base import TEXT, Inbound, Outgoing
from bot.safety.categories import categories
from bot.store import models
from bot.store.db import Database
from bot.store.tickets import TicketError, Tickets, TicketSpec


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.servers)])
def db(request: pytest.FixtureRequest, tmp_path) -> Database:
    url = (f"sqlite:///{tmp_path / 'garda.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    database = Database(url)
    database.upgrade()
    return database


def spec(name: str) -> TicketSpec:
    category = categories()[name]
    return TicketSpec(category.name, category.priority, category.claim_within)


def escalate(db: Database, chat: str, platform_id: str, category: str) -> int:
    """Store a message and save an escalation decision for it; the conversation id."""
    stored = db.store_inbound(Inbound("telegram", f"{chat}:{platform_id}", chat, TEXT, "pesan"))
    message = db.claim_next(stored.conversation_id)
    assert message is not None
    decision = Decision(text="pesan", route="escalate", intent=None, confidence=0.9,
                        category=category, hoax_id=None, reply="tunggu")
    db.save_decision(message, decision, [Outgoing("sendMessage", {"text": "tunggu"})],
                     ticket=spec(category))
    return stored.conversation_id


def test_an_escalation_opens_a_ticket_with_its_priority_and_deadline(db: Database) -> None:
    conversation = escalate(db, "c1", "1", "emergency")
    tickets = Tickets(db.engine)
    ticket = tickets.active(conversation)
    assert ticket is not None
    assert (ticket.category, ticket.priority, ticket.status) == ("emergency", 1, "open")
    assert ticket.claim_by - ticket.opened_at == dt.timedelta(minutes=5)
    assert [(e.actor, e.action, e.detail) for e in tickets.events(ticket.id)] == [
        ("garda", "opened", "emergency")]


def test_a_second_escalation_joins_the_active_ticket_and_raises_its_priority(
        db: Database) -> None:
    conversation = escalate(db, "c2", "1", "abuse")
    escalate(db, "c2", "2", "threat")
    tickets = Tickets(db.engine)
    queue = tickets.queue()
    assert len(queue) == 1 and queue[0].conversation_id == conversation
    assert (queue[0].category, queue[0].priority) == ("abuse", 1)  # opened as abuse
    assert [e.action for e in tickets.events(queue[0].id)] == ["opened", "escalated"]


def test_the_queue_is_ordered_by_priority_then_deadline(db: Database) -> None:
    for chat, category in (("a", "human_request"), ("b", "emergency"), ("c", "privacy"),
                           ("d", "self_harm")):
        escalate(db, chat, "1", category)
    assert [t.category for t in Tickets(db.engine).queue()] == [
        "emergency", "self_harm", "privacy", "human_request"]


def test_of_many_admins_claiming_at_once_exactly_one_wins(db: Database) -> None:
    conversation = escalate(db, "c3", "1", "emergency")
    tickets = Tickets(db.engine)
    ticket = tickets.active(conversation)
    assert ticket is not None
    admins = [f"admin{i}" for i in range(8)]
    start = threading.Barrier(len(admins))

    def claim(admin: str):
        start.wait()
        return admin, tickets.claim(ticket.id, admin)

    with concurrent.futures.ThreadPoolExecutor(len(admins)) as pool:
        results = list(pool.map(claim, admins))
    winners = [admin for admin, result in results if result.won]
    assert len(winners) == 1
    assert all(result.holder == winners[0] and result.status == "claimed"
               for _, result in results)
    claims = [e for e in tickets.events(ticket.id) if e.action == "claimed"]
    assert [e.actor for e in claims] == winners


def test_release_resolve_and_hand_back_follow_the_rules_and_are_logged(db: Database) -> None:
    tickets = Tickets(db.engine)
    first = tickets.active(escalate(db, "c4", "1", "privacy"))
    second = tickets.active(escalate(db, "c5", "1", "corruption"))
    assert first is not None and second is not None
    assert tickets.claim(first.id, "ani").won
    with pytest.raises(TicketError):
        tickets.release(first.id, "budi")  # only the assignee releases
    tickets.release(first.id, "ani")
    assert tickets.get(first.id).status == "open" and tickets.get(first.id).assignee is None
    assert tickets.claim(first.id, "budi").won
    tickets.resolve(first.id, "budi", "sudah dibantu")
    with pytest.raises(TicketError):
        tickets.resolve(first.id, "budi")  # already closed
    tickets.hand_back(second.id, "ani", "pertanyaan umum, bot bisa menjawab")
    assert tickets.get(second.id).status == "handed_back"
    assert tickets.active(first.conversation_id) is None
    assert [(e.actor, e.action, e.detail) for e in tickets.events(first.id)] == [
        ("garda", "opened", "privacy"), ("ani", "claimed", None), ("ani", "released", None),
        ("budi", "claimed", None), ("budi", "resolved", "sudah dibantu")]
    assert tickets.queue() == []


def test_a_new_escalation_after_resolution_opens_a_new_ticket(db: Database) -> None:
    tickets = Tickets(db.engine)
    conversation = escalate(db, "c6", "1", "human_request")
    old = tickets.active(conversation)
    assert old is not None
    tickets.resolve(old.id, "ani")
    escalate(db, "c6", "2", "human_request")
    new = tickets.active(conversation)
    assert new is not None and new.id != old.id and new.status == "open"


def test_an_admin_reply_is_queued_in_order_behind_the_bot_and_logged(db: Database) -> None:
    conversation = escalate(db, "c7", "1", "human_request")
    tickets = Tickets(db.engine)
    ticket = tickets.active(conversation)
    assert ticket is not None
    rows = db.admin_reply(conversation, ticket.id, "ani",
                          [Outgoing("sendMessage", {"text": "Halo, saya Ani dari Diskominfo."})])
    pending = db.pending_outbox(conversation)
    assert [r.payload["text"] for r in pending] == ["tunggu", "Halo, saya Ani dari Diskominfo."]
    assert pending[1].id == rows[0].id and pending[1].inbound_id is None
    assert tickets.events(ticket.id)[-1].actor == "ani"
    assert tickets.events(ticket.id)[-1].action == "replied"


def test_retention_keeps_active_tickets_and_removes_closed_ones_with_their_notes(
        db: Database) -> None:
    tickets = Tickets(db.engine)
    kept = tickets.active(escalate(db, "c8", "1", "emergency"))
    closed = tickets.active(escalate(db, "c9", "1", "privacy"))
    assert kept is not None and closed is not None
    reply = Outgoing("sendMessage", {"text": "NIK Anda 3201xxxxxxxxxxxx sudah kami blokir"})
    db.admin_reply(closed.conversation_id, closed.id, "ani", [reply])
    tickets.resolve(closed.id, "ani", "warga memberi NIK lengkap di chat")
    later = models.utcnow() + dt.timedelta(days=400)
    db.purge(30, now=later)
    assert tickets.active(kept.conversation_id) is not None  # open: never purged
    with pytest.raises(TicketError):
        tickets.get(closed.id)
    with db.engine.connect() as conn:
        assert conn.execute(select(models.outbox.c.id).where(
            models.outbox.c.ticket_id == closed.id)).all() == []
        assert conn.execute(select(models.ticket_events.c.id).where(
            models.ticket_events.c.ticket_id == closed.id)).all() == []
