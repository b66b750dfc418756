"""The admins' Telegram group: urgent tickets posted there, claimed, closed and answered there.

    escalation (worker) -> post in the group: priority, category, ticket number, claim
                           deadline (WIB), channel, the citizen's latest message (masked,
                           300 characters), buttons "Klaim" / "Selesai"
    button "Klaim"      -> Tickets.claim(id, "tg:<username or id>"); the post shows the holder
    button "Selesai"    -> resolve (the holder, or anyone while nobody holds it)
    reply to a post     -> the text goes to the citizen through the outbox (db.admin_reply)

Only tickets whose priority is at most ``GARDA_TELEGRAM_ADMIN_MAX_PRIORITY`` are posted,
once each, whichever process and however many restarts: the post is a ``ticket_posts`` row
(ticket, chat, kind, priority; unique), reserved by an INSERT before it is sent and given
its Telegram message id after, so that of processes posting the same ticket at once only
the one whose INSERT succeeds posts it (a failed send deletes the reservation: a later
escalation may try again). A ticket raised to a more urgent priority after its post (an
emergency in a paused conversation) gets a second alert, replying to the first post. A
reply is matched to its ticket by (chat, message id), never by the message id alone. Each
post is also logged on the ticket as a ``posted`` event (with the message id).

Updates from the group never become citizen messages: the gateway hands every update from
the admin chat (and every ``ticket:`` button, wherever it was pressed) to :meth:`handle`.
Garda obeys a button or a reply only when it comes from the admin chat itself and its
sender is a member of that chat (``getChatMember``, cached for a few minutes).

Posting runs beside the worker, not in its way: the citizen's reply (an emergency's "call
112") never waits for Telegram. Logs carry ticket numbers and short reasons; never a token,
a citizen's text, a phone number or an admin's name.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import html
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import telegram
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters
from telegram.constants import ChatMemberStatus, ParseMode
from telegram.error import BadRequest, ChatMigrated, TelegramError

from bot.admin.live import ticket_event
from bot.channels.base import MEDIA, TEXT, Inbound
from bot.channels.telegram import TelegramChannel, send_error
from bot.config import Settings
from bot.privacy import mask
from bot.safety.categories import categories
from bot.store.db import aware
from bot.store.models import (
    ACTIVE,
    CLAIMED,
    OPEN,
    RESOLVED,
    conversations,
    inbound,
    ticket_posts,
    utcnow,
)
from bot.store.queue import QueueUnavailable
from bot.store.tickets import SYSTEM, Event, MoveResult, Ticket, TicketError, Tickets

if TYPE_CHECKING:
    from bot.gateway.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")

POSTED = "posted"          # ticket event: the ticket was posted in the group (detail: message id)
ALERT = "alert"            # ticket_posts.kind: the ticket's first post in a chat
RAISED = "raised"          # ... a later one: the ticket became more urgent
# A reservation still without a message id after this long was left by a process that
# died while sending (a send gives up within a minute or two): a later escalation of the
# ticket may take it over. An unknown outcome then risks a second post, not a missing one.
STALE_RESERVATION = dt.timedelta(minutes=10)
PREFIX = "ticket:"         # callback data: ticket:claim:<id>, ticket:resolve:<id>
CLAIM = "claim"
RESOLVE = "resolve"
_CALLBACK = re.compile(r"ticket:(claim|resolve):(\d{1,12})")
EXCERPT = 300              # characters of the citizen's message shown in a post
MEMBER_TTL = 300.0         # seconds a "member" answer from getChatMember is trusted
NON_MEMBER_TTL = 30.0      # ... and a "not a member" answer (someone just added waits less)
MAX_RETRY_WAIT = 30.0      # longest flood-control wait a post sits out before giving up
MEMBER_STATUSES = (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR,
                   ChatMemberStatus.MEMBER)
CHANNEL_NAMES = {"telegram": "Telegram", "whatsapp": "WhatsApp"}
STATUS_NAMES = {OPEN: "menunggu klaim", RESOLVED: "selesai",
                "handed_back": "dikembalikan ke Garda"}
PRIORITY_MARKS = {1: "\U0001F534", 2: "\U0001F7E0"}  # red, orange; the rest yellow
LOCAL_ZONE = "Asia/Jakarta"  # the deadline is shown in WIB

# What the group is told (Indonesian, short: a callback answer shows at most 200 characters).
CLAIMED_BY = "Tiket #{id} diklaim oleh {holder}"
HELD_BY = "Tiket #{id} sudah dipegang {holder}"
RESOLVED_BY = "Tiket #{id} selesai"
NOT_YOURS = "Tiket #{id} dipegang {holder}; hanya dia yang bisa menutupnya"
CLOSED = "Tiket #{id} sudah ditutup"
UNKNOWN = "Tiket tidak ditemukan"
SENT_TO_CITIZEN = "Terkirim ke warga"
SENT_LATER = "Tersimpan; segera dikirim ke warga"
EMPTY_REPLY = "Balasan kosong tidak dikirim: tulis teks untuk warga."
CLOSED_REPLY = "Tiket #{id} sudah ditutup; balasan tidak dikirim ke warga."
NO_CHANNEL = "Kanal warga tidak tersedia; balasan tidak dikirim."


def _zone() -> dt.tzinfo:
    try:
        return ZoneInfo(LOCAL_ZONE)
    except ZoneInfoNotFoundError:
        return dt.timezone(dt.timedelta(hours=7))


def actor_name(user: telegram.User) -> str:
    """How an admin in the group is recorded on tickets: ``tg:<username>`` or ``tg:<id>``."""
    return f"tg:{user.username or user.id}"


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """The citizen's text as the group sees it: personal data masked, then cut."""
    masked = " ".join(mask(text).split())
    return masked if len(masked) <= limit else masked[: limit - 1].rstrip() + "\u2026"


# --- SQL the group needs beyond Tickets -------------------------------------------------


@dataclass(frozen=True)
class Citizen:
    """A conversation's channel, and what a reply to it answers (its newest message)."""

    channel: str
    latest: Inbound


def citizen(engine: Engine, conversation_id: int) -> Citizen | None:
    with engine.connect() as conn:
        conversation = conn.execute(
            select(conversations.c.channel, conversations.c.chat_id)
            .where(conversations.c.id == conversation_id)).first()
        if conversation is None:
            return None
        row = conn.execute(
            select(inbound.c.platform_id, inbound.c.kind, inbound.c.detail, inbound.c.text,
                   inbound.c.reply_to, inbound.c.is_group)
            .where(inbound.c.conversation_id == conversation_id)
            .order_by(inbound.c.id.desc()).limit(1)).first()
    channel, chat_id = str(conversation.channel), str(conversation.chat_id)
    if row is None:
        return Citizen(channel, Inbound(channel, "", chat_id, TEXT))
    # No callback id: an admin's reply answers the conversation, not an old button press.
    return Citizen(channel, Inbound(
        channel=channel, platform_id=row.platform_id, chat_id=chat_id, kind=row.kind,
        text=row.text or "", detail=row.detail, reply_to=row.reply_to,
        is_group=bool(row.is_group)))


@dataclass(frozen=True)
class Post:
    """A ticket's post in a chat (``message_id`` None: being sent)."""

    id: int
    kind: str
    priority: int
    message_id: int | None
    created_at: dt.datetime

    def abandoned(self, now: dt.datetime) -> bool:
        """A reservation whose sender died (see STALE_RESERVATION)."""
        return self.message_id is None and self.created_at < now - STALE_RESERVATION


def posts_of(engine: Engine, ticket_id: int, chat_id: str) -> list[Post]:
    """The ticket's posts (and reservations) in one chat, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(ticket_posts.c.id, ticket_posts.c.kind, ticket_posts.c.priority,
                   ticket_posts.c.message_id, ticket_posts.c.created_at)
            .where(ticket_posts.c.ticket_id == ticket_id, ticket_posts.c.chat_id == chat_id)
            .order_by(ticket_posts.c.id)).all()
    return [Post(int(r.id), str(r.kind), int(r.priority),
                 int(r.message_id) if r.message_id is not None else None,
                 aware(r.created_at) or utcnow()) for r in rows]


def reserve_post(engine: Engine, ticket_id: int, chat_id: str, kind: str, priority: int,
                 now: dt.datetime | None = None) -> int | None:
    """Reserve a post before sending it: the row's id, or None when another process has
    reserved it (and posts it). The unique (ticket, chat, kind, priority) decides."""
    now = now or utcnow()
    try:
        with engine.begin() as conn:
            return int(conn.execute(ticket_posts.insert().values(
                ticket_id=ticket_id, chat_id=chat_id, message_id=None, kind=kind,
                priority=priority, created_at=now)).inserted_primary_key[0])
    except IntegrityError:
        pass
    with engine.begin() as conn:
        found = conn.execute(select(ticket_posts.c.id).where(
            ticket_posts.c.ticket_id == ticket_id, ticket_posts.c.chat_id == chat_id,
            ticket_posts.c.kind == kind, ticket_posts.c.priority == priority)).scalar()
        if found is None:
            return None
        taken = conn.execute(update(ticket_posts).where(
            ticket_posts.c.id == found, ticket_posts.c.message_id.is_(None),
            ticket_posts.c.created_at < now - STALE_RESERVATION).values(created_at=now)
        ).rowcount == 1
    return int(found) if taken else None


def fill_post(engine: Engine, post_id: int, message_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(ticket_posts).where(ticket_posts.c.id == post_id)
                     .values(message_id=message_id))


def drop_post(engine: Engine, post_id: int) -> None:
    """Give a reservation up (the send failed): a later escalation may post it."""
    with engine.begin() as conn:
        conn.execute(delete(ticket_posts).where(ticket_posts.c.id == post_id,
                                                ticket_posts.c.message_id.is_(None)))


def posted_ticket(engine: Engine, chat_id: str, message_id: int) -> int | None:
    """The ticket a post (chat, Telegram message id) belongs to. Message ids count per
    chat: the same number in another chat is another message."""
    with engine.connect() as conn:
        found = conn.execute(
            select(ticket_posts.c.ticket_id)
            .where(ticket_posts.c.chat_id == chat_id, ticket_posts.c.message_id == message_id)
            .order_by(ticket_posts.c.id.desc()).limit(1)).scalar()
    return int(found) if found is not None else None


# --- what a post says -------------------------------------------------------------------


def _escalations(events: list[Event]) -> list[tuple[int, str, int]]:
    """(position in the log, category, priority) of the ticket's opening and escalations."""
    known = categories()
    return [(index, str(e.detail), known[str(e.detail)].priority)
            for index, e in enumerate(events)
            if e.action in ("opened", "escalated") and e.detail in known]


def post_text(ticket: Ticket, events: list[Event], who: Citizen | None,
              raised_from: int | None = None) -> str:
    """The post (HTML): what is urgent, by when, where, and what the citizen said."""
    found = _escalations(events)
    # The most urgent reason (the latest of equals): an emergency inside an abuse ticket.
    category = min(found, key=lambda f: (f[2], -f[0]))[1] if found else ticket.category
    mark = PRIORITY_MARKS.get(ticket.priority, "\U0001F7E1")
    head = f"{mark} <b>Prioritas {ticket.priority}</b> \u00b7 {html.escape(category)}"
    if raised_from is not None:
        head = (f"\u26A0\uFE0F <b>Prioritas naik {raised_from} \u2192 {ticket.priority}</b>"
                f" \u00b7 {html.escape(category)}")
    deadline = ticket.claim_by.astimezone(_zone()).strftime("%H:%M WIB, %d/%m/%Y")
    channel = CHANNEL_NAMES.get(who.channel, who.channel) if who else "?"
    if ticket.status == CLAIMED:
        status = f"dipegang {ticket.assignee}"
    else:
        status = STATUS_NAMES.get(ticket.status, ticket.status)
    lines = [head, f"Tiket #{ticket.id} \u00b7 {html.escape(channel)}",
             f"Klaim sebelum: {deadline}", f"Status: {html.escape(status)}"]
    if who is not None:
        latest = who.latest
        said = excerpt(latest.text) if latest.text else ""
        if latest.kind == MEDIA:
            said = f"[{latest.detail or 'media'}] {said}".strip()
        if said:
            lines += ["", f"<blockquote>{html.escape(said, quote=False)}</blockquote>"]
    if ticket.status in ACTIVE:
        lines += ["", "Balas pesan ini untuk menjawab warga."]
    return "\n".join(lines)


def keyboard(ticket: Ticket) -> InlineKeyboardMarkup | None:
    if ticket.status not in ACTIVE:
        return None
    return InlineKeyboardMarkup([[
        InlineKeyboardButton("Klaim", callback_data=f"{PREFIX}{CLAIM}:{ticket.id}"),
        InlineKeyboardButton("Selesai", callback_data=f"{PREFIX}{RESOLVE}:{ticket.id}"),
    ]])


# --- the group ---------------------------------------------------------------------------


class AdminGroup:
    """Posts urgent tickets to the admins' chat and carries out what its members do there."""

    def __init__(self, settings: Settings, runtime: Runtime, channel: TelegramChannel, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if settings.telegram_admin_chat_id is None:
            raise ValueError("no admin chat (GARDA_TELEGRAM_ADMIN_CHAT_ID)")
        self.chat_id = int(settings.telegram_admin_chat_id)
        self.max_priority = settings.telegram_admin_max_priority
        self.runtime = runtime
        self.channel = channel
        self.engine = runtime.db.engine
        self.tickets = Tickets(self.engine)
        self.notifier = runtime.notifier
        self._clock = clock
        self._members: dict[int, tuple[bool, float]] = {}
        self._posting = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._seen: collections.OrderedDict[int, None] = collections.OrderedDict()

    @classmethod
    def for_runtime(cls, settings: Settings, runtime: Runtime) -> AdminGroup | None:
        """The group, when Telegram and an admin chat are configured; None otherwise."""
        channel = runtime.channels.get("telegram")
        if (settings.telegram_admin_chat_id is None or not settings.telegram_enabled
                or not isinstance(channel, TelegramChannel)):
            return None
        return cls(settings, runtime, channel)

    async def idle(self) -> None:
        """Wait for the posts under way."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self, wait: float = 5.0) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.idle()), wait)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- posting --------------------------------------------------------------------------

    async def on_escalation(self, ticket: Ticket, category: str) -> None:
        """The runtime's escalation listener: post in the background, return at once."""
        if ticket.priority > self.max_priority:
            return
        task = asyncio.create_task(self._post(ticket.id), name=f"admin-post-{ticket.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, ticket_id: int) -> None:
        try:
            async with self._posting:  # one at a time here; ticket_posts guards the rest
                await self._post_once(ticket_id)
        except Exception as error:
            log.error("admin group: ticket %s not posted (%s)", ticket_id, type(error).__name__)

    async def _post_once(self, ticket_id: int) -> None:
        ticket = await asyncio.to_thread(self.tickets.get, ticket_id)
        if ticket.status not in ACTIVE or ticket.priority > self.max_priority:
            return
        chat = str(self.chat_id)
        now = utcnow()
        posts = [p for p in await asyncio.to_thread(posts_of, self.engine, ticket_id, chat)
                 if not p.abandoned(now)]
        kind, raised_from, reply_to = ALERT, None, None
        if posts:
            raised_from = min(p.priority for p in posts)
            if ticket.priority >= raised_from:
                return  # posted already, and no more urgent since
            kind, reply_to = RAISED, posts[0].message_id
        reservation = await asyncio.to_thread(reserve_post, self.engine, ticket_id, chat, kind,
                                              ticket.priority)
        if reservation is None:
            log.info("admin group: ticket %s is posted by another process", ticket_id)
            return
        try:
            events = await asyncio.to_thread(self.tickets.events, ticket_id)
            who = await asyncio.to_thread(citizen, self.engine, ticket.conversation_id)
            text = post_text(ticket, events, who, raised_from)
            message = await self._call(
                "post", lambda: self._send(text, keyboard(ticket), reply_to), attempts=3)
        except Exception:
            await asyncio.to_thread(drop_post, self.engine, reservation)
            raise
        if message is None:
            await asyncio.to_thread(drop_post, self.engine, reservation)
            return
        await asyncio.to_thread(fill_post, self.engine, reservation, message.message_id)
        await asyncio.to_thread(self.tickets.note, ticket.id, SYSTEM, POSTED,
                                str(message.message_id))
        log.info("admin group: ticket %s posted (priority %s)", ticket.id, ticket.priority)

    async def _send(self, text: str, markup: InlineKeyboardMarkup | None = None,
                    reply_to: int | None = None) -> telegram.Message:
        try:
            await self.channel.pace_group(str(self.chat_id))
        except Exception as error:  # the shared limiter is down: an alert still goes out
            log.warning("admin group: rate limiter unavailable (%s)", type(error).__name__)
        return await self.channel.bot.send_message(
            chat_id=self.chat_id, text=text, parse_mode=ParseMode.HTML, reply_markup=markup,
            reply_parameters=ReplyParameters(reply_to, allow_sending_without_reply=True)
            if reply_to is not None else None)

    async def _call(self, what: str, make: Callable[[], Awaitable[T]],
                    attempts: int = 1) -> T | None:
        """One Bot API call; flood control and unreachable-server errors are waited out
        ``attempts`` times in all, every other failure is logged and given up."""
        for attempt in range(1, attempts + 1):
            try:
                return await make()
            except ChatMigrated as exc:
                log.error("admin group: the admin chat became a supergroup; set "
                          "GARDA_TELEGRAM_ADMIN_CHAT_ID to %s", exc.new_chat_id)
                return None
            except BadRequest as exc:
                if "not modified" not in str(exc).lower():
                    log.warning("admin group: %s failed (%s)", what, send_error(exc).reason)
                return None
            except TelegramError as exc:
                error = send_error(exc)
                wait = error.retry_after if error.retry_after is not None else float(attempt)
                if not error.retryable or attempt >= attempts or wait > MAX_RETRY_WAIT:
                    log.warning("admin group: %s failed (%s)", what, error.reason)
                    return None
                log.warning("admin group: %s failed (%s); trying again in %g s", what,
                            error.reason, wait)
                await asyncio.sleep(wait)
        return None

    # -- updates from the group -------------------------------------------------------------

    def owns(self, data: Any) -> bool:
        """Whether an update (raw JSON) is the group's business: anything from the admin
        chat, and any ticket button wherever it was pressed."""
        if not isinstance(data, dict):
            return False
        for key in ("message", "edited_message", "callback_query"):
            part = data.get(key)
            if not isinstance(part, dict):
                continue
            if key == "callback_query":
                if str(part.get("data") or "").startswith(PREFIX):
                    return True
                part = part.get("message")
                if not isinstance(part, dict):
                    continue
            chat = part.get("chat")
            if isinstance(chat, dict) and chat.get("id") == self.chat_id:
                return True
        return False

    async def handle(self, data: dict[str, Any]) -> None:
        """Carry out one update from :meth:`owns`. Never raises: the platform is always
        told it was received (a replayed reply must not reach the citizen twice)."""
        update_id = data.get("update_id")
        if isinstance(update_id, int):
            if update_id in self._seen:
                return
            self._seen[update_id] = None
            while len(self._seen) > 1000:
                self._seen.popitem(last=False)
        try:
            update = telegram.Update.de_json(data, self.channel.bot)
            if update.callback_query is not None:
                await self._on_button(update.callback_query)
            elif update.message is not None:
                await self._on_message(update.message)
        except Exception as error:
            log.error("admin group: update not handled (%s)", type(error).__name__)

    async def is_member(self, user_id: int) -> bool:
        now = self._clock()
        cached = self._members.get(user_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            member = await self.channel.bot.get_chat_member(self.chat_id, user_id)
        except TelegramError as exc:
            log.warning("admin group: membership check failed (%s)", send_error(exc).reason)
            return False
        allowed = member.status in MEMBER_STATUSES or (
            member.status == ChatMemberStatus.RESTRICTED and bool(getattr(member, "is_member",
                                                                          False)))
        if len(self._members) > 1000:
            self._members = {k: v for k, v in self._members.items() if v[1] > now}
        self._members[user_id] = (allowed, now + (MEMBER_TTL if allowed else NON_MEMBER_TTL))
        return allowed

    async def _obeyed(self, chat: telegram.Chat | None, user: telegram.User | None,
                      what: str) -> bool:
        if chat is None or chat.id != self.chat_id:
            log.warning("admin group: ignored a %s from outside the admin chat", what)
            return False
        if user is None or user.is_bot or not await self.is_member(user.id):
            log.warning("admin group: ignored a %s from someone who is not a member", what)
            return False
        return True

    async def _on_button(self, query: telegram.CallbackQuery) -> None:
        message = query.message
        chat = message.chat if message is not None else None
        if not await self._obeyed(chat, query.from_user, "ticket button"):
            return
        found = _CALLBACK.fullmatch(query.data or "")
        if found is None:
            await self._call("answer", lambda: query.answer(UNKNOWN))
            return
        action, ticket_id = found.group(1), int(found.group(2))
        actor = actor_name(query.from_user)
        try:
            ticket = await asyncio.to_thread(self.tickets.get, ticket_id)
        except TicketError:
            await self._call("answer", lambda: query.answer(UNKNOWN))
            return
        if ticket.status not in ACTIVE:
            answer = CLOSED.format(id=ticket_id)
        elif action == CLAIM:
            result = await asyncio.to_thread(self.tickets.claim, ticket_id, actor)
            template = CLAIMED_BY if result.won else HELD_BY
            answer = (template.format(id=ticket_id, holder=result.holder)
                      if result.status in ACTIVE else CLOSED.format(id=ticket_id))
            if result.won:
                self.notifier.publish(ticket_event(ticket_id, "claimed"))
                log.info("admin group: ticket %s claimed", ticket_id)
        else:
            moved = await asyncio.to_thread(self._resolve, ticket, actor)
            if moved.moved:
                answer = RESOLVED_BY.format(id=ticket_id)
                self.notifier.publish(ticket_event(ticket_id, "resolved"))
                log.info("admin group: ticket %s resolved", ticket_id)
            elif moved.status in ACTIVE:
                answer = NOT_YOURS.format(id=ticket_id, holder=moved.holder)
            else:
                answer = CLOSED.format(id=ticket_id)
        await self._call("answer", lambda: query.answer(answer))
        if message is not None:
            await self._refresh(ticket_id, message.message_id)

    def _resolve(self, ticket: Ticket, actor: str) -> MoveResult:
        """Resolve as its holder, or as anyone while nobody holds it: the holder seen is a
        condition of the UPDATE, so a claim by someone else in between wins. Tried again
        (a few times) only while the ticket changes between those two allowed states."""
        result = MoveResult(False, ticket.assignee, ticket.status)
        for _ in range(3):
            if result.holder not in (None, actor) or result.status not in ACTIVE:
                break
            result = self.tickets.resolve(ticket.id, actor, holder=result.holder)
            if result.moved:
                break
        return result

    async def _refresh(self, ticket_id: int, message_id: int) -> None:
        """Rewrite a post with the ticket as it is now (holder, status, buttons)."""
        ticket = await asyncio.to_thread(self.tickets.get, ticket_id)
        events = await asyncio.to_thread(self.tickets.events, ticket_id)
        who = await asyncio.to_thread(citizen, self.engine, ticket.conversation_id)
        text = post_text(ticket, events, who)
        await self._call("edit", lambda: self.channel.bot.edit_message_text(
            text, chat_id=self.chat_id, message_id=message_id, parse_mode=ParseMode.HTML,
            reply_markup=keyboard(ticket)))

    async def _on_message(self, message: telegram.Message) -> None:
        replied = message.reply_to_message
        if replied is None or message.chat.id != self.chat_id:
            return  # the group's own conversation: not for Garda, not for citizens
        ticket_id = await asyncio.to_thread(posted_ticket, self.engine, str(message.chat.id),
                                            replied.message_id)
        if ticket_id is None:
            return
        if not await self._obeyed(message.chat, message.from_user, "reply"):
            return
        assert message.from_user is not None
        actor = actor_name(message.from_user)
        text = (message.text or "").strip()
        if not text:
            await self._tell(EMPTY_REPLY, message.message_id)
            return
        ticket = await asyncio.to_thread(self.tickets.get, ticket_id)
        if ticket.status not in ACTIVE:
            await self._tell(CLOSED_REPLY.format(id=ticket_id), message.message_id)
            return
        who = await asyncio.to_thread(citizen, self.engine, ticket.conversation_id)
        channel = self.runtime.channels.get(who.channel) if who is not None else None
        if who is None or channel is None:
            await self._tell(NO_CHANNEL, message.message_id)
            return
        calls = channel.render(text, (), who.latest)
        if not calls:
            await self._tell(EMPTY_REPLY, message.message_id)
            return
        await asyncio.to_thread(self.runtime.db.admin_reply, ticket.conversation_id,
                                ticket.id, actor, calls)
        self.notifier.publish(ticket_event(ticket.id, "replied"))
        log.info("admin group: reply on ticket %s queued for the citizen", ticket.id)
        confirmation = SENT_TO_CITIZEN
        try:
            await self.runtime.queue.push(ticket.conversation_id)
        except QueueUnavailable:
            confirmation = SENT_LATER  # the workers' sweep finds the pending row
        await self._tell(confirmation, message.message_id)

    async def _tell(self, text: str, reply_to: int) -> None:
        await self._call("note", lambda: self._send(html.escape(text, quote=False),
                                                   reply_to=reply_to))
