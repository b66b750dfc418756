"""The admin queue in SQL: tickets, their append-only event log, and the atomic claim.

SQL is the record. A ticket is opened in the same transaction as the decision that
escalated the message (:meth:`bot.store.db.Database.save_decision`), so a message is
never escalated without its ticket nor ticketed twice. A claim is one conditional
UPDATE (``... WHERE status = 'open'``): of any number of admins claiming at once,
exactly one changes the row, and the others are told who holds it. Release, resolve and
hand back are conditional UPDATEs too, and "only the holder may" is part of their WHERE
(``holder=``), not a check made beforehand: between reading a ticket and moving it,
another admin may have claimed, released or closed it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from bot.store.models import (
    ACTIVE,
    CLAIMED,
    HANDED_BACK,
    OPEN,
    RESOLVED,
    ticket_events,
    tickets,
    utcnow,
)

SYSTEM = "garda"  # the actor for what Garda itself does


class _Holder:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


# ``holder=`` conditions of a move besides a name ("only while that admin holds it") and
# None ("only while nobody holds it").
ANY: Final[Any] = _Holder("ANY")    # whoever holds it, or nobody
SELF: Final[Any] = _Holder("SELF")  # only while the admin making the move holds it


class TicketError(Exception):
    """The ticket does not exist, or is not in a state that allows the action."""


@dataclass(frozen=True)
class TicketSpec:
    """What an escalation asks for: set from the category (settings/escalation.yml)."""

    category: str
    priority: int
    claim_within: dt.timedelta


@dataclass(frozen=True)
class Ticket:
    id: int
    conversation_id: int
    inbound_id: int | None
    category: str
    priority: int
    status: str
    assignee: str | None
    opened_at: dt.datetime
    claim_by: dt.datetime
    claimed_at: dt.datetime | None
    closed_at: dt.datetime | None


@dataclass(frozen=True)
class Event:
    ticket_id: int
    at: dt.datetime
    actor: str
    action: str
    detail: str | None


@dataclass(frozen=True)
class ClaimResult:
    won: bool
    holder: str | None   # who holds the ticket now (the winner, or whoever had it)
    status: str


@dataclass(frozen=True)
class MoveResult:
    """What a release, resolve or hand back did: whether this call moved the ticket, and
    the ticket as it is right after (``holder``: its assignee; None while nobody has it)."""

    moved: bool
    holder: str | None
    status: str


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def _ticket(row: Any) -> Ticket:
    return Ticket(
        id=row.id, conversation_id=row.conversation_id, inbound_id=row.inbound_id,
        category=row.category, priority=row.priority, status=row.status,
        assignee=row.assignee, opened_at=_aware(row.opened_at) or utcnow(),
        claim_by=_aware(row.claim_by) or utcnow(), claimed_at=_aware(row.claimed_at),
        closed_at=_aware(row.closed_at),
    )


def log_event(conn: Connection, ticket_id: int, actor: str, action: str,
              detail: str | None = None, at: dt.datetime | None = None) -> None:
    conn.execute(ticket_events.insert().values(ticket_id=ticket_id, at=at or utcnow(),
                                               actor=actor, action=action, detail=detail))


def active_in(conn: Connection, conversation_id: int) -> Ticket | None:
    row = conn.execute(
        select(tickets).where(tickets.c.conversation_id == conversation_id,
                              tickets.c.status.in_(ACTIVE))
        .order_by(tickets.c.id.desc()).limit(1)
    ).first()
    return _ticket(row) if row is not None else None


def open_or_escalate(conn: Connection, conversation_id: int, inbound_id: int, spec: TicketSpec,
                     now: dt.datetime) -> int:
    """Open a ticket for the conversation, or, if one is active, record the new escalation
    on it (raising its priority and pulling its deadline in when the new one is more
    urgent). Returns the ticket id."""
    current = active_in(conn, conversation_id)
    deadline = now + spec.claim_within
    if current is None:
        ticket_id = int(conn.execute(tickets.insert().values(
            conversation_id=conversation_id, inbound_id=inbound_id, category=spec.category,
            priority=spec.priority, status=OPEN, opened_at=now, claim_by=deadline,
        )).inserted_primary_key[0])
        log_event(conn, ticket_id, SYSTEM, "opened", spec.category, now)
        return ticket_id
    changes: dict[str, Any] = {}
    if spec.priority < current.priority:
        changes["priority"] = spec.priority
    if current.status == OPEN and deadline < current.claim_by:
        changes["claim_by"] = deadline
    if changes:
        conn.execute(update(tickets).where(tickets.c.id == current.id).values(**changes))
    log_event(conn, current.id, SYSTEM, "escalated", spec.category, now)
    return current.id


class Tickets:
    """Ticket operations on an engine (each one transaction)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, ticket_id: int) -> Ticket:
        with self.engine.connect() as conn:
            row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).first()
        if row is None:
            raise TicketError(f"no ticket {ticket_id}")
        return _ticket(row)

    def active(self, conversation_id: int) -> Ticket | None:
        with self.engine.connect() as conn:
            return active_in(conn, conversation_id)

    def queue(self, limit: int = 200) -> list[Ticket]:
        """Active tickets, most urgent first: priority, then the claim deadline."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(tickets).where(tickets.c.status.in_(ACTIVE))
                .order_by(tickets.c.priority, tickets.c.claim_by, tickets.c.id).limit(limit))
            return [_ticket(r) for r in rows]

    def events(self, ticket_id: int) -> list[Event]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(ticket_events).where(ticket_events.c.ticket_id == ticket_id)
                                .order_by(ticket_events.c.id))
            return [Event(r.ticket_id, _aware(r.at) or utcnow(), r.actor, r.action, r.detail)
                    for r in rows]

    def last_event(self) -> tuple[int, int] | None:
        """(event id, ticket id) of the newest entry in any ticket's log: a cheap way to
        tell that something changed since an earlier look."""
        with self.engine.connect() as conn:
            row = conn.execute(select(ticket_events.c.id, ticket_events.c.ticket_id)
                               .order_by(ticket_events.c.id.desc()).limit(1)).first()
        return (int(row.id), int(row.ticket_id)) if row is not None else None

    def claim(self, ticket_id: int, admin: str) -> ClaimResult:
        now = utcnow()
        with self.engine.begin() as conn:
            won = conn.execute(
                update(tickets).where(tickets.c.id == ticket_id, tickets.c.status == OPEN)
                .values(status=CLAIMED, assignee=admin, claimed_at=now)
            ).rowcount == 1
            if won:
                log_event(conn, ticket_id, admin, "claimed", None, now)
        ticket = self.get(ticket_id)
        return ClaimResult(won, ticket.assignee, ticket.status)

    def release(self, ticket_id: int, admin: str, *, holder: str | object | None = SELF
                ) -> MoveResult:
        """Give a claimed ticket back to the queue. By default only its holder may; a
        supervisor taking a claim away names the holder they saw (logged as theirs)."""
        held = admin if holder is SELF else holder
        detail = f"klaim {held}" if isinstance(held, str) and held != admin else None
        return self._move(ticket_id, admin, "released", (CLAIMED,), OPEN, detail,
                          holder=holder, assignee=None, claimed_at=None)

    def resolve(self, ticket_id: int, admin: str, note: str | None = None, *,
                holder: str | object | None = ANY) -> MoveResult:
        return self._move(ticket_id, admin, "resolved", ACTIVE, RESOLVED, note,
                          holder=holder, closed_at=utcnow())

    def hand_back(self, ticket_id: int, admin: str, note: str | None = None, *,
                  holder: str | object | None = ANY) -> MoveResult:
        return self._move(ticket_id, admin, "handed_back", ACTIVE, HANDED_BACK, note,
                          holder=holder, closed_at=utcnow())

    def note(self, ticket_id: int, actor: str, action: str, detail: str | None = None) -> None:
        with self.engine.begin() as conn:
            log_event(conn, ticket_id, actor, action, detail)

    def _move(self, ticket_id: int, admin: str, action: str, allowed: tuple[str, ...],
              status: str, detail: str | None = None, *, holder: str | object | None = ANY,
              **values: Any) -> MoveResult:
        """One conditional UPDATE: the ticket moves only if it is in an ``allowed`` state
        and held as ``holder`` says (ANY, SELF, None for nobody, or an admin's name), and
        the move is logged in the same transaction. Of two admins moving at once, one
        moves it and the other is told the ticket's state after."""
        if holder is SELF:
            holder = admin
        where = [tickets.c.id == ticket_id, tickets.c.status.in_(allowed)]
        if holder is None:
            where.append(tickets.c.assignee.is_(None))
        elif holder is not ANY:
            if not isinstance(holder, str):
                raise TypeError(f"holder must be ANY, SELF, None or a name, not {holder!r}")
            where.append(tickets.c.assignee == holder)
        now = utcnow()
        with self.engine.begin() as conn:
            moved = conn.execute(update(tickets).where(*where)
                                 .values(status=status, **values)).rowcount == 1
            if moved:
                log_event(conn, ticket_id, admin, action, detail, now)
            row = conn.execute(select(tickets.c.status, tickets.c.assignee)
                               .where(tickets.c.id == ticket_id)).first()
        if row is None:
            raise TicketError(f"no ticket {ticket_id}")
        return MoveResult(moved, row.assignee, row.status)
