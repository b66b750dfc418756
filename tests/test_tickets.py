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
from bot.store.tickets import ANY, SELF, MoveResult, TicketError, Tickets, TicketSpec


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
    # Only the assignee releases: budi's release changes nothing and says who holds it.
    assert tickets.release(first.id, "budi") == MoveResult(False, "ani", "claimed")
    assert tickets.release(first.id, "ani") == MoveResult(True, None, "open")
    assert tickets.get(first.id).status == "open" and tickets.get(first.id).assignee is None
    assert tickets.claim(first.id, "budi").won
    assert tickets.resolve(first.id, "budi", "sudah dibantu").moved
    assert tickets.resolve(first.id, "budi") == MoveResult(False, "budi", "resolved")
    assert tickets.hand_back(second.id, "ani", "pertanyaan umum, bot bisa menjawab").moved
    assert tickets.get(second.id).status == "handed_back"
    assert tickets.active(first.conversation_id) is None
    assert [(e.actor, e.action, e.detail) for e in tickets.events(first.id)] == [
        ("garda", "opened", "privacy"), ("ani", "claimed", None), ("ani", "released", None),
        ("budi", "claimed", None), ("budi", "resolved", "sudah dibantu")]
    assert tickets.queue() == []


def test_a_release_by_anyone_but_the_holder_changes_nothing(db: Database) -> None:
    tickets = Tickets(db.engine)
    ticket = tickets.active(escalate(db, "r1", "1", "privacy"))
    assert ticket is not None
    assert tickets.release(ticket.id, "ani") == MoveResult(False, None, "open")  # unclaimed
    assert tickets.claim(ticket.id, "ani").won
    before = (tickets.get(ticket.id), tickets.events(ticket.id))
    for admin, holder in (("budi", SELF), ("budi", "budi"), ("sari", "budi"), ("ani", None)):
        result = tickets.release(ticket.id, admin, holder=holder)
        assert result == MoveResult(False, "ani", "claimed")
    assert (tickets.get(ticket.id), tickets.events(ticket.id)) == before
    # A supervisor takes the claim they saw away; it is logged as theirs, naming the holder.
    assert tickets.release(ticket.id, "sari", holder="ani").moved
    assert [(e.actor, e.action, e.detail) for e in tickets.events(ticket.id)][-1] == (
        "sari", "released", "klaim ani")
    with pytest.raises(TypeError):
        tickets.release(ticket.id, "ani", holder=3)
    with pytest.raises(TicketError):
        tickets.release(999_999, "ani")


@pytest.mark.parametrize("move", ["resolve", "hand_back"])
def test_a_close_conditional_on_the_holder_happens_only_while_they_hold_it(
        db: Database, move: str) -> None:
    tickets = Tickets(db.engine)
    ticket = tickets.active(escalate(db, f"h-{move}", "1", "human_request"))
    assert ticket is not None
    close = getattr(tickets, move)
    # holder=None: only while nobody holds it.
    assert tickets.claim(ticket.id, "ani").won
    assert close(ticket.id, "budi", holder=None) == MoveResult(False, "ani", "claimed")
    assert close(ticket.id, "budi", holder=SELF) == MoveResult(False, "ani", "claimed")
    assert close(ticket.id, "budi", holder="budi") == MoveResult(False, "ani", "claimed")
    assert [e.action for e in tickets.events(ticket.id)] == ["opened", "claimed"]
    status = "resolved" if move == "resolve" else "handed_back"
    assert close(ticket.id, "ani", "oke", holder="ani") == MoveResult(True, "ani", status)
    assert tickets.events(ticket.id)[-1].actor == "ani"
    assert tickets.events(ticket.id)[-1].detail == "oke"
    # ANY (the default): a supervisor's override, open or claimed by anyone.
    other = tickets.active(escalate(db, f"h2-{move}", "1", "human_request"))
    assert other is not None
    assert close(other.id, "sari", holder=None).moved
    third = tickets.active(escalate(db, f"h3-{move}", "1", "human_request"))
    assert third is not None and tickets.claim(third.id, "ani").won
    assert close(third.id, "sari", holder=ANY) == MoveResult(True, "ani", status)


@pytest.mark.parametrize("moves", [("resolve", "resolve"), ("resolve", "hand_back"),
                                   ("hand_back", "hand_back")])
def test_of_two_admins_closing_at_once_exactly_one_moves_the_ticket(
        db: Database, moves: tuple[str, str]) -> None:
    tickets = Tickets(db.engine)

    def close(ticket_id: int, start: threading.Barrier, admin: str, move: str) -> MoveResult:
        start.wait()
        result: MoveResult = getattr(tickets, move)(ticket_id, admin, f"oleh {admin}")
        return result

    for round_ in range(5):
        ticket = tickets.active(escalate(db, f"race-{round_}", "1", "human_request"))
        assert ticket is not None
        start = threading.Barrier(2)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            jobs = [pool.submit(close, ticket.id, start, "ani", moves[0]),
                    pool.submit(close, ticket.id, start, "budi", moves[1])]
            results = [job.result() for job in jobs]
        assert sorted(r.moved for r in results) == [False, True]
        final = tickets.get(ticket.id)
        assert all(r.status == final.status for r in results)
        closing = [e for e in tickets.events(ticket.id)
                   if e.action in ("resolved", "handed_back")]
        assert len(closing) == 1
        winner = ("ani", "budi")[[r.moved for r in results].index(True)]
        assert (closing[0].actor, closing[0].detail) == (winner, f"oleh {winner}")


def test_a_holder_racing_a_supervisor_who_takes_the_claim_away(db: Database) -> None:
    """The agent resolves only while holding the ticket; the supervisor releases only the
    claim they saw. Whatever the order, the log matches the ticket's state."""
    tickets = Tickets(db.engine)

    def agent(ticket_id: int, start: threading.Barrier) -> MoveResult:
        start.wait()
        return tickets.resolve(ticket_id, "ani", holder=SELF)

    def supervisor(ticket_id: int, start: threading.Barrier) -> MoveResult:
        start.wait()
        return tickets.release(ticket_id, "sari", holder="ani")

    for round_ in range(5):
        ticket = tickets.active(escalate(db, f"sup-{round_}", "1", "privacy"))
        assert ticket is not None and tickets.claim(ticket.id, "ani").won
        start = threading.Barrier(2)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            resolved = pool.submit(agent, ticket.id, start)
            released = pool.submit(supervisor, ticket.id, start)
            outcomes = (resolved.result().moved, released.result().moved)
        assert outcomes in ((True, False), (False, True))
        actions = [e.action for e in tickets.events(ticket.id)][2:]
        assert actions == (["resolved"] if outcomes[0] else ["released"])
        assert tickets.get(ticket.id).status == ("resolved" if outcomes[0] else "open")


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
    with db.engine.begin() as conn:  # both were posted in the admins' Telegram group
        for number, ticket in enumerate((kept, closed), 1):
            conn.execute(models.ticket_posts.insert().values(
                ticket_id=ticket.id, chat_id="-100123", message_id=number, kind="alert",
                priority=ticket.priority, created_at=models.utcnow()))
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
        assert conn.execute(select(models.ticket_posts.c.ticket_id)).scalars().all() == [
            kept.id]
