"""The SQL record: one :class:`Database` over a SQLite file (embedded default) or PostgreSQL.

Every method is synchronous and short; the async gateway and workers call them in a
thread (``asyncio.to_thread``). Each method is one transaction, so a crash leaves either
all of a step or none of it: an inbound message and its conversation, a decision and all
of its outbox rows.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, create_engine, delete, event, func, or_, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import QueuePool

from bot.channels.base import Inbound, Outgoing, StatusEvent
from bot.store.models import (
    ACTIVE,
    DONE,
    FAILED,
    PENDING,
    PROCESSING,
    QUEUED,
    SENDING,
    SENT,
    UNKNOWN,
    conversations,
    delivery_events,
    hoax_daily,
    inbound,
    outbox,
    review_items,
    ticket_events,
    ticket_posts,
    tickets,
    utcnow,
)
from bot.store.tickets import SYSTEM, TicketSpec, log_event, open_or_escalate

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# WhatsApp may resend a webhook for days; its message ids are kept at least this long
# (longer than Meta's 7 days), even when conversation content is deleted sooner.
DEDUPE_DAYS = 8
MIGRATION_LOCK = 0x6A7264  # any constant: the advisory lock that serialises migrations
DELIVERY_ORDER = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}
# Hoax trends are counted per day as the team lives it. Indonesia has three time zones;
# an institution outside WIB sets GARDA_TIMEZONE (an IANA name such as Asia/Makassar).
LOCAL_DAY_ZONE = "Asia/Jakarta"


def local_day(moment: dt.datetime, zone: str | None = None) -> dt.date:
    """The calendar day of ``moment`` in the institution's time zone."""
    name = zone or os.environ.get("GARDA_TIMEZONE") or LOCAL_DAY_ZONE
    try:
        tz: dt.tzinfo = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning("unknown time zone %r; counting days in WIB (UTC+7)", name)
        tz = dt.timezone(dt.timedelta(hours=7))
    return (aware(moment) or moment).astimezone(tz).date()


@dataclass(frozen=True)
class Stored:
    """The outcome of storing one inbound message."""

    conversation_id: int
    inbound_id: int
    duplicate: bool
    status: str


@dataclass(frozen=True)
class InboundRow:
    id: int
    conversation_id: int
    channel: str
    chat_id: str
    platform_id: str
    kind: str
    detail: str | None
    text: str
    reply_to: str | None
    callback_id: str | None
    is_group: bool
    received_at: dt.datetime

    def as_inbound(self) -> Inbound:
        return Inbound(
            channel=self.channel, platform_id=self.platform_id, chat_id=self.chat_id,
            kind=self.kind, text=self.text, detail=self.detail, reply_to=self.reply_to,
            callback_id=self.callback_id, is_group=self.is_group,
        )


@dataclass(frozen=True)
class OutboxRow:
    id: int
    inbound_id: int | None  # None: an admin's reply
    seq: int
    conversation_id: int
    channel: str
    method: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: dt.datetime | None
    platform_message_id: str | None = None
    received_at: dt.datetime | None = None  # when its inbound message was stored
    is_group: bool = False


@dataclass(frozen=True)
class ConversationRow:
    id: int
    channel: str
    chat_id: str
    last_inbound_at: dt.datetime | None


@dataclass(frozen=True)
class ConversationEntry:
    """One line of a conversation as the admins' console shows it."""

    id: int                  # the inbound or outbox row's id
    at: dt.datetime          # received (a citizen's message) or written (a reply)
    source: str              # "citizen", "bot" or "admin"
    author: str | None       # the admin who wrote a reply
    kind: str                # a citizen message's kind (text, button, media) or a reply's method
    detail: str | None       # media type
    text: str | None         # a citizen's text (None once retention emptied it)
    payload: dict[str, Any] | None  # a reply's platform call (None once emptied)
    status: str


def aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands datetimes back naive; every stored datetime is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE: a write transaction takes
        # the write lock up front instead of failing half-way with "database is locked".
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One connection: the embedded default is one process, and SQLite takes one writer.
        engine = create_engine(url, future=True, poolclass=QueuePool, pool_size=1,
                               max_overflow=0, pool_timeout=60,
                               connect_args={"check_same_thread": False, "timeout": 30})
        _sqlite_setup(engine)
        return engine
    return create_engine(url, future=True, pool_size=10, max_overflow=10, pool_pre_ping=True,
                         pool_timeout=10)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (safe to run every start)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Gateway and worker processes start together: one migrates, the others
                # wait here and then find nothing to do (without it, two CREATE TABLE
                # alembic_version race and the loser exits).
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()

    # -- inbound ---------------------------------------------------------------------

    def store_inbound(self, message: Inbound, now: dt.datetime | None = None) -> Stored:
        """Keep one inbound message; a second delivery of the same platform id is a duplicate.

        Uniqueness is the database's (channel, platform_id) constraint, so concurrent
        deliveries of one update across any number of gateway processes store one row.
        """
        now = now or utcnow()
        try:
            with self.engine.begin() as conn:
                conversation_id = self._conversation(conn, message.channel, message.chat_id)
                seen_at = min(message.sent_at or now, now)
                conn.execute(
                    update(conversations)
                    .where(conversations.c.id == conversation_id)
                    .where(or_(conversations.c.last_inbound_at.is_(None),
                               conversations.c.last_inbound_at < seen_at))
                    .values(last_inbound_at=seen_at)
                )
                inbound_id = conn.execute(
                    inbound.insert().values(
                        channel=message.channel, platform_id=message.platform_id,
                        conversation_id=conversation_id, kind=message.kind,
                        detail=message.detail, text=message.text, reply_to=message.reply_to,
                        callback_id=message.callback_id, is_group=message.is_group,
                        sent_at=message.sent_at, received_at=now, status=QUEUED,
                    )
                ).inserted_primary_key[0]
                return Stored(conversation_id, int(inbound_id), False, QUEUED)
        except IntegrityError:
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(inbound.c.id, inbound.c.conversation_id, inbound.c.status).where(
                        inbound.c.channel == message.channel,
                        inbound.c.platform_id == message.platform_id,
                    )
                ).first()
            if row is None:  # the conflict was on the conversation, raced by another writer
                return self.store_inbound(message, now)
            return Stored(int(row.conversation_id), int(row.id), True, str(row.status))

    def _conversation(self, conn: Connection, channel: str, chat_id: str) -> int:
        found = conn.execute(
            select(conversations.c.id).where(
                conversations.c.channel == channel, conversations.c.chat_id == chat_id
            )
        ).scalar()
        if found is not None:
            return int(found)
        return int(
            conn.execute(
                conversations.insert().values(channel=channel, chat_id=chat_id, created_at=utcnow())
            ).inserted_primary_key[0]
        )

    def claim_next(self, conversation_id: int, now: dt.datetime | None = None) -> InboundRow | None:
        """Take the oldest queued message of a conversation (arrival order)."""
        now = now or utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(
                select(inbound, conversations.c.chat_id)
                .join(conversations, conversations.c.id == inbound.c.conversation_id)
                .where(inbound.c.conversation_id == conversation_id, inbound.c.status == QUEUED)
                .order_by(inbound.c.id)
                .limit(1)
            ).first()
            if row is None:
                return None
            claimed = conn.execute(
                update(inbound)
                .where(inbound.c.id == row.id, inbound.c.status == QUEUED)
                .values(status=PROCESSING, claimed_at=now)
            ).rowcount
            if claimed != 1:
                return None
        return InboundRow(
            id=row.id, conversation_id=row.conversation_id, channel=row.channel,
            chat_id=row.chat_id, platform_id=row.platform_id, kind=row.kind, detail=row.detail,
            text=row.text or "", reply_to=row.reply_to, callback_id=row.callback_id,
            is_group=bool(row.is_group), received_at=aware(row.received_at) or now,
        )

    def save_decision(
        self, message: InboundRow, decision: Any, calls: Sequence[Outgoing],
        now: dt.datetime | None = None, ticket: TicketSpec | None = None,
    ) -> list[OutboxRow]:
        """Record the decision and every reply call at once (one reply per inbound message),
        and, for an escalation (``ticket``), open the conversation's ticket or add to its
        active one, in the same transaction.

        Returns the outbox rows to send: the new ones, or, if this message's replies were
        already recorded (a recovered claim), those of them still pending.
        """
        now = now or utcnow()
        values = dict(status=DONE, decided_at=now, route=decision.route, intent=decision.intent,
                      confidence=float(decision.confidence), category=decision.category,
                      hoax_id=getattr(decision, "hoax_id", None))
        rows: list[OutboxRow] = []
        try:
            with self.engine.begin() as conn:
                if values["hoax_id"]:
                    self._count_hoax(conn, local_day(message.received_at), values["hoax_id"])
                for seq, call in enumerate(calls):
                    outbox_id = conn.execute(outbox.insert().values(
                        inbound_id=message.id, seq=seq, conversation_id=message.conversation_id,
                        channel=message.channel, method=call.method,
                        payload=json.dumps(call.payload, ensure_ascii=False), status=PENDING,
                        attempts=0, created_at=now,
                    )).inserted_primary_key[0]
                    rows.append(OutboxRow(
                        id=int(outbox_id), inbound_id=message.id, seq=seq,
                        conversation_id=message.conversation_id, channel=message.channel,
                        method=call.method, payload=dict(call.payload), status=PENDING,
                        attempts=0, next_attempt_at=None, received_at=message.received_at,
                        is_group=message.is_group,
                    ))
                conn.execute(update(inbound).where(inbound.c.id == message.id).values(**values))
                if ticket is not None:
                    open_or_escalate(conn, message.conversation_id, message.id, ticket, now)
                self._fill_review_inbox(conn, message, decision, now)
        except IntegrityError:
            with self.engine.begin() as conn:
                conn.execute(update(inbound).where(inbound.c.id == message.id).values(**values))
            return [row for row in self.outbox_for(message.id) if row.status == PENDING]
        return rows

    @staticmethod
    def _fill_review_inbox(conn: Connection, message: InboundRow, decision: Any,
                           now: dt.datetime) -> None:
        """The trainers' review inbox (bot/trainer/inbox.py), in its own savepoint: a
        failure there is logged and never costs the citizen their reply."""
        from bot.trainer import inbox

        try:
            with conn.begin_nested():
                inbox.fill(conn, message, decision, now)
        except Exception as error:  # the decision must be recorded whatever happens here
            logger.error("review inbox not filled for inbound message %s: %s", message.id,
                         type(error).__name__)

    @staticmethod
    def _count_hoax(conn: Connection, day: dt.date, hoax_id: str) -> None:
        """One more match of ``hoax_id`` on ``day`` (an upsert: safe under concurrency)."""
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        statement = insert(hoax_daily).values(day=day, hoax_id=hoax_id, matches=1)
        conn.execute(statement.on_conflict_do_update(
            index_elements=[hoax_daily.c.day, hoax_daily.c.hoax_id],
            set_={"matches": hoax_daily.c.matches + 1},
        ))

    def hoax_counts(self, first: dt.date, last: dt.date) -> dict[tuple[dt.date, str], int]:
        """Matches per (day, hoax id) from ``first`` to ``last`` inclusive."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(hoax_daily).where(
                hoax_daily.c.day >= first, hoax_daily.c.day <= last))
            return {(row.day, row.hoax_id): int(row.matches) for row in rows}

    def fact_check_counts(self, since: dt.datetime) -> dict[dt.date, int]:
        """Claim-like messages no approved hoax matched (``fact_check``), per local day."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(inbound.c.received_at).where(
                inbound.c.category == "fact_check", inbound.c.received_at >= since))
            found: dict[dt.date, int] = {}
            for (received,) in rows:
                day = local_day(received)
                found[day] = found.get(day, 0) + 1
            return found

    def save_handoff(self, message: InboundRow, ticket_id: int,
                     now: dt.datetime | None = None) -> None:
        """A message of a conversation that people are handling: recorded on its ticket,
        not answered by the bot."""
        now = now or utcnow()
        with self.engine.begin() as conn:
            conn.execute(update(inbound).where(inbound.c.id == message.id).values(
                status=DONE, decided_at=now, route="handoff"))
            log_event(conn, ticket_id, SYSTEM, "message", str(message.id), now)

    def inbound_route(self, inbound_id: int) -> str | None:
        """The route recorded for a message (None while it waits to be decided)."""
        with self.engine.connect() as conn:
            return conn.execute(select(inbound.c.route).where(inbound.c.id == inbound_id)
                                ).scalar()

    def previous_decided(self, conversation_id: int, before: int) -> tuple[str, str | None,
                                                                          str] | None:
        """(route, intent, kind) of the conversation's last decided message before ``before``."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(inbound.c.route, inbound.c.intent, inbound.c.kind)
                .where(inbound.c.conversation_id == conversation_id, inbound.c.id < before,
                       inbound.c.status == DONE)
                .order_by(inbound.c.id.desc()).limit(1)
            ).first()
        return (row.route, row.intent, row.kind) if row is not None else None

    # -- outbox ----------------------------------------------------------------------

    def pending_outbox(self, conversation_id: int) -> list[OutboxRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outbox, inbound.c.received_at, inbound.c.is_group)
                .outerjoin(inbound, inbound.c.id == outbox.c.inbound_id)  # admin rows: none
                .where(outbox.c.conversation_id == conversation_id, outbox.c.status == PENDING)
                .order_by(outbox.c.id)
            ).all()
        return [self._outbox_row(row) for row in rows]

    def admin_reply(self, conversation_id: int, ticket_id: int, author: str,
                    calls: Sequence[Outgoing], now: dt.datetime | None = None) -> list[OutboxRow]:
        """Queue an admin's reply to the citizen (sent by a worker, in order, like any
        other reply) and log it on the ticket, in one transaction."""
        now = now or utcnow()
        rows: list[OutboxRow] = []
        with self.engine.begin() as conn:
            conversation = conn.execute(select(conversations.c.channel).where(
                conversations.c.id == conversation_id)).first()
            if conversation is None:
                raise ValueError(f"no conversation {conversation_id}")
            for seq, call in enumerate(calls):
                outbox_id = conn.execute(outbox.insert().values(
                    inbound_id=None, seq=seq, conversation_id=conversation_id,
                    channel=conversation.channel, method=call.method,
                    payload=json.dumps(call.payload, ensure_ascii=False), status=PENDING,
                    attempts=0, created_at=now, author=author, ticket_id=ticket_id,
                )).inserted_primary_key[0]
                rows.append(OutboxRow(
                    id=int(outbox_id), inbound_id=None, seq=seq, conversation_id=conversation_id,
                    channel=conversation.channel, method=call.method, payload=dict(call.payload),
                    status=PENDING, attempts=0, next_attempt_at=None,
                ))
            log_event(conn, ticket_id, author, "replied", None, now)
        return rows

    def outbox_for(self, inbound_id: int) -> list[OutboxRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outbox).where(outbox.c.inbound_id == inbound_id).order_by(outbox.c.seq)
            ).all()
        return [self._outbox_row(row) for row in rows]

    @staticmethod
    def _outbox_row(row: Any) -> OutboxRow:
        return OutboxRow(
            id=row.id, inbound_id=row.inbound_id, seq=row.seq,
            conversation_id=row.conversation_id, channel=row.channel, method=row.method,
            payload=json.loads(row.payload or "{}"), status=row.status, attempts=row.attempts,
            next_attempt_at=aware(row.next_attempt_at),
            platform_message_id=row.platform_message_id,
            received_at=aware(getattr(row, "received_at", None)),
            is_group=bool(getattr(row, "is_group", False)),
        )

    def mark_sending(self, outbox_id: int) -> bool:
        """Claim a pending row for one send attempt; False if someone else has it.

        ``next_attempt_at`` then records when the attempt started, so that recovery can tell
        a send left in flight by a crash."""
        with self.engine.begin() as conn:
            return conn.execute(
                update(outbox)
                .where(outbox.c.id == outbox_id, outbox.c.status == PENDING)
                .values(status=SENDING, attempts=outbox.c.attempts + 1,
                        next_attempt_at=utcnow())
            ).rowcount == 1

    def mark_sent(self, outbox_id: int, platform_message_id: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id == outbox_id).values(
                status=SENT, sent_at=utcnow(), platform_message_id=platform_message_id,
                error=None))

    def mark_retry(self, outbox_id: int, due: dt.datetime, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id == outbox_id).values(
                status=PENDING, next_attempt_at=due, error=error[:200]))

    def mark_failed(self, outbox_id: int, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id == outbox_id).values(
                status=FAILED, error=error[:200]))

    def last_inbound(self, conversation_id: int) -> InboundRow | None:
        """The conversation's newest citizen message (what an admin's reply answers)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(inbound, conversations.c.chat_id)
                .join(conversations, conversations.c.id == inbound.c.conversation_id)
                .where(inbound.c.conversation_id == conversation_id)
                .order_by(inbound.c.id.desc()).limit(1)
            ).first()
        if row is None:
            return None
        return InboundRow(
            id=row.id, conversation_id=row.conversation_id, channel=row.channel,
            chat_id=row.chat_id, platform_id=row.platform_id, kind=row.kind, detail=row.detail,
            text=row.text or "", reply_to=row.reply_to, callback_id=row.callback_id,
            is_group=bool(row.is_group), received_at=aware(row.received_at) or utcnow(),
        )

    def conversation_log(self, conversation_id: int, limit: int = 500) -> list[ConversationEntry]:
        """The conversation's citizen messages and replies (Garda's and admins'), oldest
        first: the newest ``limit`` of them."""
        with self.engine.connect() as conn:
            said = conn.execute(
                select(inbound.c.id, inbound.c.received_at, inbound.c.kind, inbound.c.detail,
                       inbound.c.text, inbound.c.status)
                .where(inbound.c.conversation_id == conversation_id)
                .order_by(inbound.c.id.desc()).limit(limit)
            ).all()
            replied = conn.execute(
                select(outbox.c.id, outbox.c.created_at, outbox.c.method, outbox.c.payload,
                       outbox.c.status, outbox.c.author, outbox.c.inbound_id)
                .where(outbox.c.conversation_id == conversation_id)
                .order_by(outbox.c.id.desc()).limit(limit)
            ).all()
        entries = [
            ConversationEntry(id=r.id, at=aware(r.received_at) or utcnow(), source="citizen",
                              author=None, kind=r.kind, detail=r.detail, text=r.text,
                              payload=None, status=r.status)
            for r in said
        ] + [
            ConversationEntry(id=r.id, at=aware(r.created_at) or utcnow(),
                              source="bot" if r.inbound_id is not None else "admin",
                              author=r.author, kind=r.method, detail=None, text=None,
                              payload=json.loads(r.payload) if r.payload else None,
                              status=r.status)
            for r in replied
        ]
        # A reply is written after the message it answers; at equal times the message first.
        entries.sort(key=lambda e: (e.at, e.source != "citizen", e.id))
        return entries[-limit:]

    def conversation(self, conversation_id: int) -> ConversationRow:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(conversations).where(conversations.c.id == conversation_id)
            ).one()
        return ConversationRow(row.id, row.channel, row.chat_id, aware(row.last_inbound_at))

    # -- delivery reports ------------------------------------------------------------

    def record_statuses(self, events: Iterable[StatusEvent]) -> int:
        count = 0
        with self.engine.begin() as conn:
            for ev in events:
                conn.execute(delivery_events.insert().values(
                    channel=ev.channel, platform_message_id=ev.platform_message_id,
                    status=ev.status[:16], at=ev.at, error=(ev.error or None) and ev.error[:200],
                    received_at=utcnow(),
                ))
                rank = DELIVERY_ORDER.get(ev.status, 0)
                lower = [s for s, r in DELIVERY_ORDER.items() if r < rank]
                values: dict[str, Any] = {"delivery_status": ev.status[:16],
                                          "delivery_at": ev.at or utcnow()}
                if ev.status == "failed":
                    values["error"] = (ev.error or "failed")[:200]
                conn.execute(
                    update(outbox)
                    .where(outbox.c.platform_message_id == ev.platform_message_id)
                    .where(or_(outbox.c.delivery_status.is_(None),
                               outbox.c.delivery_status.in_(lower)))
                    .values(**values)
                )
                count += 1
        return count

    def delivery_status(self, platform_message_id: str) -> str | None:
        """The latest delivery report recorded against a sent message (for tests and admins)."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(outbox.c.delivery_status).where(
                    outbox.c.platform_message_id == platform_message_id)
            ).scalar()

    # -- recovery, metrics, retention --------------------------------------------------

    def recover(self, now: dt.datetime | None = None, *, queued_after: float = 2.0,
                stuck_after: float = 120.0) -> list[int]:
        """Conversations with work that the queue may have lost (Redis restarted, a worker died).

        Messages claimed by a worker that stopped answering go back to the queue: their
        decision is not yet recorded, so no reply exists that could be sent twice. A send
        left in flight by a crash becomes UNKNOWN and is never repeated.
        """
        now = now or utcnow()
        queued_before = now - dt.timedelta(seconds=queued_after)
        stuck_before = now - dt.timedelta(seconds=stuck_after)
        with self.engine.begin() as conn:
            conn.execute(update(inbound)
                         .where(inbound.c.status == PROCESSING, inbound.c.claimed_at < stuck_before)
                         .values(status=QUEUED))
            conn.execute(update(outbox)
                         .where(outbox.c.status == SENDING,
                                outbox.c.next_attempt_at < stuck_before)
                         .values(status=UNKNOWN, error="crashed while sending; not repeated"))
            ids = set(conn.execute(
                select(inbound.c.conversation_id).distinct()
                .where(inbound.c.status == QUEUED, inbound.c.received_at < queued_before)
            ).scalars())
            ids |= set(conn.execute(
                select(outbox.c.conversation_id).distinct().where(
                    outbox.c.status == PENDING,
                    or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at <= now),
                )
            ).scalars())
        return sorted(int(i) for i in ids)

    def has_queued(self, conversation_id: int) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(
                select(inbound.c.id).where(inbound.c.conversation_id == conversation_id,
                                           inbound.c.status == QUEUED).limit(1)
            ).first() is not None

    def backlog(self) -> int:
        """Messages stored but not yet decided: the queue depth that matters."""
        with self.engine.connect() as conn:
            return int(conn.execute(
                select(func.count()).select_from(inbound)
                .where(inbound.c.status.in_([QUEUED, PROCESSING]))
            ).scalar() or 0)

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                "inbound": int(conn.execute(select(func.count()).select_from(inbound)).scalar()
                               or 0),
                "outbox": int(conn.execute(select(func.count()).select_from(outbox)).scalar()
                              or 0),
            }

    def purge(self, retention_days: int, now: dt.datetime | None = None) -> dict[str, int]:
        """Delete conversation content older than ``retention_days``.

        Message text and reply bodies go after ``retention_days``; the rows themselves (the
        platform ids that stop a replayed webhook from being answered again) after
        ``max(retention_days, DEDUPE_DAYS)``.
        """
        now = now or utcnow()
        content_before = now - dt.timedelta(days=retention_days)
        rows_before = now - dt.timedelta(days=max(retention_days, DEDUPE_DAYS))
        with self.engine.begin() as conn:
            emptied = conn.execute(
                update(inbound).where(inbound.c.received_at < content_before,
                                      inbound.c.text.is_not(None))
                .values(text=None, callback_id=None)
            ).rowcount
            conn.execute(update(outbox).where(outbox.c.created_at < content_before,
                                              outbox.c.payload.is_not(None))
                         .values(payload=None))
            # The trainers' review inbox holds (masked) citizen text too.
            conn.execute(update(review_items).where(review_items.c.created_at < content_before,
                                                    review_items.c.text.is_not(None))
                         .values(text=None))
            # Admins' notes may quote the citizen: emptied with the rest of the content.
            conn.execute(update(ticket_events).where(
                ticket_events.c.at < content_before, ticket_events.c.actor != SYSTEM,
                ticket_events.c.detail.is_not(None)).values(detail=None))
            # Closed tickets go with the rows; open ones stay whatever their age.
            closed = select(tickets.c.id).where(tickets.c.status.not_in(ACTIVE),
                                                tickets.c.closed_at < rows_before)
            conn.execute(delete(ticket_events).where(ticket_events.c.ticket_id.in_(closed)))
            conn.execute(delete(ticket_posts).where(ticket_posts.c.ticket_id.in_(closed)))
            conn.execute(delete(tickets).where(tickets.c.id.in_(closed)))
            old = select(inbound.c.id).where(inbound.c.received_at < rows_before)
            conn.execute(update(tickets).where(tickets.c.inbound_id.in_(old))
                         .values(inbound_id=None))
            conn.execute(delete(outbox).where(or_(
                outbox.c.inbound_id.in_(old),
                and_(outbox.c.inbound_id.is_(None), outbox.c.created_at < rows_before))))
            deleted = conn.execute(delete(inbound).where(inbound.c.received_at < rows_before)
                                   ).rowcount
            conn.execute(delete(delivery_events).where(delivery_events.c.received_at < rows_before))
            live = select(inbound.c.conversation_id).distinct()
            ticketed = select(tickets.c.conversation_id).distinct()
            conn.execute(delete(conversations).where(and_(
                conversations.c.id.not_in(live),
                conversations.c.id.not_in(ticketed),
                conversations.c.id.not_in(select(outbox.c.conversation_id).distinct()),
                or_(conversations.c.last_inbound_at.is_(None),
                    conversations.c.last_inbound_at < rows_before))))
        return {"emptied": int(emptied or 0), "deleted": int(deleted or 0)}
