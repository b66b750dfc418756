"""Telegram: Bot API updates in, ``sendMessage``/``answerCallbackQuery`` out (PTB 22).

* :func:`parse_update` turns one update (webhook body or ``getUpdates`` item) into an
  :class:`Inbound`, ``None`` for updates Garda deliberately ignores, or raises
  :class:`MalformedUpdate`.
* :class:`TelegramChannel` renders a reply into outbox calls (JSON payloads), performs them
  behind the rate limits Telegram publishes, long-polls ``getUpdates`` when no public URL
  is configured, and registers the webhook when one is.

PTB makes exactly one HTTP request per call: ``telegram.Bot`` has no retry of its own
(retries live in ``telegram.ext``, which Garda does not use) and httpx's default transport
retries nothing. A failed call is reported as :class:`SendError` and the worker decides,
so one outbox row never becomes two messages through a hidden retry. Retryable means
Telegram did not take the message: 429 (with its ``retry_after``), 5xx, or a request that
never got out (connect/pool/write failure). A request that went out but got no answer
(read timeout, dropped connection) is *not* retryable: it may have been delivered.

Privacy: the request URL carries the bot token and PTB logs parameters at DEBUG, so the
``httpx``, ``httpcore`` and ``telegram`` loggers are held at WARNING; this module logs
neither message text nor chat ids, and error reasons are short fixed phrases.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import html
import logging
import re
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import httpx
import telegram
from telegram import InlineKeyboardMarkup, Message, ReplyParameters
from telegram.constants import MessageLimit, ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from bot.brain.decision import Button
from bot.channels.base import (
    BUTTON,
    KEEPALIVE_EXPIRY,
    MEDIA,
    TEXT,
    Inbound,
    MalformedUpdate,
    Outgoing,
    RateLimiter,
    SendContext,
    SendError,
    SendResult,
)
from bot.channels.text import split_text as text_split
from bot.config import Settings

log = logging.getLogger(__name__)

CHANNEL = "telegram"
SEND_MESSAGE = "sendMessage"
ANSWER_CALLBACK = "answerCallbackQuery"
ALLOWED_UPDATES = ["message", "callback_query"]
MAX_CALLBACK_DATA = 64  # bytes (InlineKeyboardButtonLimit.MAX_CALLBACK_DATA)
GROUP_TYPES = ("group", "supergroup")
# Checked in this order: a venue message also carries a location, an animation a document.
MEDIA_KINDS = (
    "photo", "voice", "audio", "video", "video_note", "sticker", "venue", "location",
    "animation", "document", "contact", "poll", "dice",
)
# Well-formed updates Garda never acts on (also outside ALLOWED_UPDATES).
IGNORED_UPDATES = ("edited_message", "channel_post", "edited_channel_post")
QUIET_LOGGERS = ("httpx", "httpcore", "telegram")

T = TypeVar("T")
# httpx failures after which the request certainly did not reach Telegram.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteTimeout,
             httpx.WriteError)


# --- inbound ---------------------------------------------------------------------------


def parse_update(
    data: Any, bot: telegram.Bot | None, bot_username: str | None
) -> Inbound | None:
    """One Bot API update as an :class:`Inbound`; ``None`` when Garda ignores it."""
    if not isinstance(data, dict):
        raise MalformedUpdate("update is not an object")
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise MalformedUpdate("update_id missing or not an integer")
    if not any(key in data for key in ("message", "callback_query", *IGNORED_UPDATES)):
        raise MalformedUpdate("unsupported update type")
    try:
        update = telegram.Update.de_json(data, bot)
    except Exception:  # PTB raises KeyError/TypeError/AttributeError on bad shapes
        raise MalformedUpdate("update could not be parsed") from None
    if update.message is None and update.callback_query is None:
        return None  # edited message or channel post
    username = bot_username or _bot_attr(bot, "username")
    if update.callback_query is not None:
        return _parse_callback(update_id, update.callback_query)
    assert update.message is not None
    return _parse_message(update_id, update.message, username, bot)


def _bot_attr(bot: telegram.Bot | None, name: str) -> Any:
    if bot is None:
        return None
    try:
        return getattr(bot, name)
    except RuntimeError:  # PTB: the bot's identity is known only after initialize()
        return None


def _parse_callback(update_id: int, query: telegram.CallbackQuery) -> Inbound | None:
    message = query.message
    if message is None or message.chat is None:
        raise MalformedUpdate("callback query without a message")
    if not query.data:
        return None  # a game button: not one of Garda's
    return Inbound(
        channel=CHANNEL,
        platform_id=str(update_id),
        chat_id=str(message.chat.id),
        kind=BUTTON,
        text=query.data,
        callback_id=query.id,
        is_group=message.chat.type in GROUP_TYPES,
    )


def _parse_message(
    update_id: int, message: Message, username: str | None, bot: telegram.Bot | None
) -> Inbound | None:
    if message.chat is None or message.date is None:
        raise MalformedUpdate("message without chat or date")
    if message.from_user is not None and message.from_user.is_bot:
        return None
    is_group = message.chat.type in GROUP_TYPES
    if message.chat.type not in (*GROUP_TYPES, "private"):
        return None
    if is_group and not _addressed(message, username, bot):
        return None
    sent_at = message.date
    if sent_at.tzinfo is None:
        sent_at = sent_at.replace(tzinfo=dt.timezone.utc)
    common: dict[str, Any] = {
        "channel": CHANNEL,
        "platform_id": str(update_id),
        "chat_id": str(message.chat.id),
        "sent_at": sent_at.astimezone(dt.timezone.utc),
        "reply_to": str(message.message_id) if is_group else None,
        "is_group": is_group,
    }
    if message.text is not None:
        text = message.text
        if username:
            text = _strip_mention(text, username) or text
        return Inbound(kind=TEXT, text=text, **common)
    for kind in MEDIA_KINDS:
        if getattr(message, kind, None):
            return Inbound(kind=MEDIA, text="", detail=kind, **common)
    return None  # service messages (members joined, pinned, ...)


def _mention_re(username: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w/@])@{re.escape(username)}(?!\w)", re.IGNORECASE)


def _addressed(message: Message, username: str | None, bot: telegram.Bot | None) -> bool:
    """A group message is for Garda when it mentions the bot or replies to the bot."""
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.is_bot:
        author = replied.from_user
        if username and (author.username or "").casefold() == username.casefold():
            return True
        bot_id = _bot_attr(bot, "id")
        if bot_id is not None and author.id == bot_id:
            return True
    if not username:
        return False
    handle = f"@{username}".casefold()
    mentions = [*message.parse_entities(["mention"]).values(),
                *message.parse_caption_entities(["mention"]).values()]
    if any(value.casefold() == handle for value in mentions):
        return True
    body = message.text or message.caption or ""
    command = re.compile(rf"(?<!\S)/\w+@{re.escape(username)}(?!\w)", re.IGNORECASE)
    return bool(_mention_re(username).search(body) or command.search(body))


def _strip_mention(text: str, username: str) -> str:
    """``"@GardaBot, jam buka?"`` -> ``"jam buka?"``; ``/start@GardaBot`` is left alone."""
    pattern = re.compile(
        rf"\s*(?<![\w/@])@{re.escape(username)}(?!\w)[,:]?\s*", re.IGNORECASE
    )
    return pattern.sub(" ", text).strip()


# --- outbound --------------------------------------------------------------------------

def split_text(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """Parts of at most ``limit`` (Telegram's message length by default): see channels.text."""
    return text_split(text, limit)


def _keyboard(buttons: Sequence[Button]) -> dict[str, Any] | None:
    rows: list[list[dict[str, str]]] = []
    for button in buttons:
        if len(button.payload.encode("utf-8")) > MAX_CALLBACK_DATA:
            log.warning(
                "dropping a button: its payload %r is longer than %d bytes",
                button.payload, MAX_CALLBACK_DATA,
            )
            continue
        if not button.payload or not button.title.strip():
            log.warning("dropping a button with an empty title or payload %r", button.payload)
            continue
        rows.append([{"text": button.title, "callback_data": button.payload}])
    return {"inline_keyboard": rows} if rows else None


def _chat_ref(chat_id: str) -> int | str:
    return int(chat_id) if re.fullmatch(r"-?\d+", chat_id) else chat_id


def _retry_after_seconds(exc: RetryAfter) -> float:
    # PTB 22.2+ deprecates the int form: reading the attribute warns unless PTB_TIMEDELTA
    # is set, and then it is a timedelta. Accept both.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: Any = exc.retry_after
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(value)


def _short(exc: BaseException) -> str:
    """The head of PTB's message ("Chat not found", "httpx.ConnectError"): no content, no ids."""
    head = str(exc).split(":", 1)[0].strip()
    head = re.sub(r"\d{5,}", "<n>", head)[:60]
    return head or type(exc).__name__


def _send_error(exc: TelegramError) -> SendError:
    # Order matters: TimedOut and BadRequest are NetworkError subclasses in PTB.
    if isinstance(exc, RetryAfter):
        seconds = _retry_after_seconds(exc)
        return SendError(f"telegram: flood control, retry after {seconds:g} s",
                         retryable=True, retry_after=seconds)
    cause = exc.__cause__
    if isinstance(exc, NetworkError) and isinstance(cause, httpx.TransportError):
        # PTB wraps httpx's exception (TimedOut for timeouts, NetworkError for the rest).
        if isinstance(cause, _NOT_SENT):
            # The request never reached Telegram: safe to make again.
            return SendError(f"telegram: unreachable ({type(cause).__name__})", retryable=True)
        # Sent but unanswered (read timeout, dropped connection): it may have been
        # delivered, and a second copy is worse than a missing one.
        return SendError(f"telegram: no response ({type(cause).__name__})", retryable=False)
    if isinstance(exc, TimedOut):
        return SendError("telegram: timed out", retryable=True)
    if isinstance(exc, ChatMigrated):
        return SendError("telegram: group was migrated to a supergroup", retryable=False)
    if isinstance(exc, BadRequest):
        return SendError(f"telegram: bad request: {_short(exc)}", retryable=False)
    if isinstance(exc, Forbidden):
        return SendError("telegram: forbidden (bot blocked, kicked or not allowed to write)",
                         retryable=False)
    if isinstance(exc, InvalidToken):
        return SendError("telegram: bot token rejected", retryable=False)
    if isinstance(exc, NetworkError):  # an HTTP error status (5xx): Telegram did not take it
        return SendError(f"telegram: server error: {_short(exc)}", retryable=True)
    return SendError(f"telegram: {type(exc).__name__}", retryable=False)


def send_error(exc: TelegramError) -> SendError:
    """How a failed Bot API call is reported (reason, retryable, retry_after), for calls made
    outside the outbox (the admins' group)."""
    return _send_error(exc)


class _Stopped(Exception):
    pass


class TelegramChannel:
    """The Telegram :class:`~bot.channels.base.Channel`, plus polling and webhook set-up."""

    name = CHANNEL

    def __init__(
        self, settings: Settings, limiter: RateLimiter, *, request_timeout: float = 10.0
    ) -> None:
        if settings.telegram_token is None:
            raise ValueError("Telegram is not configured (GARDA_TELEGRAM_TOKEN)")
        self._settings = settings
        self._limiter = limiter
        self._timeout = request_timeout
        self._bot: telegram.Bot | None = None
        self._updates_request: HTTPXRequest | None = None
        self.username: str | None = None
        for name in QUIET_LOGGERS:
            logger = logging.getLogger(name)
            if logger.getEffectiveLevel() < logging.WARNING:
                logger.setLevel(logging.WARNING)

    @property
    def bot(self) -> telegram.Bot:
        if self._bot is None:
            raise RuntimeError("TelegramChannel.start() has not been called")
        return self._bot

    async def start(self) -> None:
        if self._bot is not None:
            return
        settings = self._settings
        assert settings.telegram_token is not None
        api = settings.telegram_api_url
        wait = self._timeout
        request = HTTPXRequest(
            connect_timeout=wait, read_timeout=wait, write_timeout=wait,
            httpx_kwargs={"limits": httpx.Limits(max_connections=256,
                                                 keepalive_expiry=KEEPALIVE_EXPIRY)},
        )
        # getUpdates adds its long-poll timeout to this read timeout.
        updates_request = HTTPXRequest(
            connection_pool_size=1, connect_timeout=wait, read_timeout=wait, write_timeout=wait
        )
        bot = telegram.Bot(
            str(settings.telegram_token),
            base_url=f"{api}/bot",
            base_file_url=f"{api}/file/bot",
            request=request,
            get_updates_request=updates_request,
        )
        try:
            await bot.initialize()  # getMe
        except BaseException:
            # Bot.shutdown() does nothing for a bot whose initialize() failed, but the
            # HTTP clients are open already: close them here.
            await asyncio.gather(request.shutdown(), updates_request.shutdown())
            raise
        self._updates_request = updates_request
        self._bot = bot
        self.username = bot.username

    async def stop(self) -> None:
        bot, self._bot = self._bot, None
        if bot is not None:
            await bot.shutdown()

    # -- rendering and sending --

    def render(self, reply: str, buttons: Sequence[Button], inbound: Inbound) -> list[Outgoing]:
        calls: list[Outgoing] = []
        if inbound.callback_id:
            calls.append(Outgoing(ANSWER_CALLBACK, {"callback_query_id": inbound.callback_id}))
        parts = split_text(reply)
        if not parts:
            if buttons:
                log.warning("empty reply: its %d button(s) cannot be sent alone", len(buttons))
            return calls
        keyboard = _keyboard(buttons)
        for index, part in enumerate(parts):
            payload: dict[str, Any] = {
                "chat_id": inbound.chat_id,
                "text": html.escape(part, quote=False),
                "parse_mode": ParseMode.HTML.value,
            }
            if index == 0 and inbound.is_group and inbound.reply_to:
                payload["reply_parameters"] = {
                    "message_id": int(inbound.reply_to),
                    "allow_sending_without_reply": True,
                }
            if index == len(parts) - 1 and keyboard is not None:
                payload["reply_markup"] = keyboard
            calls.append(Outgoing(SEND_MESSAGE, payload))
        return calls

    async def _wait_limits(self, chat_id: str, is_group: bool) -> None:
        """Most specific limit first, so the global slot is taken just before sending."""
        settings = self._settings
        if is_group:
            # 20 messages a minute per group, in any 60 s window: with GCRA a window of
            # just under 60 s admits floor(60 * rate) - 1 + burst events, so burst 1 is the
            # largest that keeps to 20. A split reply in a group is therefore paced 3 s a
            # part; the per-chat burst below cannot override that.
            await self._limiter.wait(
                f"telegram:group:{chat_id}", settings.telegram_group_per_minute / 60.0, 1
            )
        await self._limiter.wait(
            f"telegram:chat:{chat_id}", settings.telegram_chat_rate, settings.telegram_chat_burst
        )
        rate = settings.telegram_global_rate
        await self._limiter.wait("telegram:global", rate, max(1, int(rate)))

    async def pace_group(self, chat_id: str) -> None:
        """Wait for a group's rate limits before a call made outside the outbox (the admins'
        group, bot/admin/telegram_group.py)."""
        await self._wait_limits(chat_id, True)

    async def send(self, call: Outgoing, context: SendContext) -> SendResult:
        bot = self.bot
        payload = call.payload
        if call.method == ANSWER_CALLBACK:
            try:
                await bot.answer_callback_query(str(payload["callback_query_id"]))
            except TelegramError as exc:
                raise _send_error(exc) from None
            return SendResult(None)
        if call.method != SEND_MESSAGE:
            raise SendError(f"telegram: unsupported call {call.method!r}", retryable=False)
        chat_id = str(payload.get("chat_id") or context.chat_id)
        is_group = context.is_group or chat_id.startswith("-")
        try:
            await self._wait_limits(chat_id, is_group)
        except Exception as error:
            # The shared limiter (Redis) is unreachable. Nothing was sent, so the outbox may
            # safely try again; sending unthrottled could trip Telegram's flood control.
            raise SendError(f"rate limiter unavailable ({type(error).__name__})",
                            retryable=True, retry_after=1.0) from error
        reply_parameters = payload.get("reply_parameters")
        reply_markup = payload.get("reply_markup")
        try:
            message = await bot.send_message(
                chat_id=_chat_ref(chat_id),
                text=payload["text"],
                parse_mode=payload.get("parse_mode"),
                reply_parameters=ReplyParameters.de_json(reply_parameters, bot)
                if reply_parameters else None,
                reply_markup=InlineKeyboardMarkup.de_json(reply_markup, bot)
                if reply_markup else None,
            )
        except TelegramError as exc:
            raise _send_error(exc) from None
        return SendResult(str(message.message_id))

    # -- receiving --

    async def set_webhook(self, url: str, secret: str) -> None:
        await self.bot.set_webhook(
            url=url, secret_token=secret, allowed_updates=ALLOWED_UPDATES
        )

    async def _get_updates(self, offset: int | None, timeout: int, limit: int | None = None
                           ) -> list[Any]:
        # Bot.get_updates would turn the JSON into Update objects (and, if one fails to
        # parse, log the whole batch, texts included, at CRITICAL and raise forever);
        # do_api_request warns for methods PTB implements. Bot._post returns the raw
        # "result" list through the getUpdates request object, as get_updates itself does.
        data: dict[str, Any] = {"timeout": timeout, "allowed_updates": ALLOWED_UPDATES}
        if offset is not None:
            data["offset"] = offset
        if limit is not None:
            data["limit"] = limit
        assert self._updates_request is not None
        read_timeout = (self._updates_request.read_timeout or 0) + timeout
        result = await self.bot._post("getUpdates", data, read_timeout=read_timeout)
        return list(result or [])

    async def poll(
        self,
        handle: Callable[[dict], Awaitable[bool]],
        stop: asyncio.Event,
        timeout: int = 25,
        *,
        initial_backoff: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        """Long-poll ``getUpdates`` until ``stop`` is set, handing each raw update to ``handle``.

        The offset moves past an update only once ``handle`` returned True (stored); on
        False or an exception the same update is fetched and offered again after a backoff
        (doubling from ``initial_backoff`` up to ``max_backoff``).
        """
        backoff = initial_backoff

        async def pause() -> None:
            nonlocal backoff
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, max_backoff)

        while not stop.is_set():
            try:
                await self._unless_stopped(
                    self.bot.delete_webhook(drop_pending_updates=False), stop
                )
                break
            except _Stopped:
                return
            except InvalidToken:
                raise
            except TelegramError as exc:
                log.warning("deleteWebhook failed (%s); retrying in %g s", _short(exc), backoff)
                await pause()

        offset: int | None = None
        confirmed: int | None = None
        while not stop.is_set():
            try:
                updates = await self._unless_stopped(self._get_updates(offset, timeout), stop)
            except _Stopped:
                break
            except InvalidToken:
                raise
            except TelegramError as exc:
                log.warning("getUpdates failed (%s); retrying in %g s", _short(exc), backoff)
                await pause()
                continue
            confirmed = offset  # Telegram forgets every update below the offset it was sent
            failed = False
            for raw in updates:
                if stop.is_set():
                    break
                update_id = raw.get("update_id") if isinstance(raw, dict) else None
                if not isinstance(update_id, int):
                    log.warning("getUpdates returned an item without an update_id; skipped")
                    continue
                if offset is not None and update_id < offset:
                    continue
                try:
                    stored = await handle(raw)
                except Exception as exc:
                    log.warning("update %d: handler failed (%s)", update_id, type(exc).__name__)
                    stored = False
                if not stored:
                    failed = True
                    break
                offset = update_id + 1
            if failed:
                await pause()
            else:
                backoff = initial_backoff
        if offset is not None and offset != confirmed:
            # Tell Telegram what was stored, so a restart does not fetch it again.
            with contextlib.suppress(TelegramError):
                await self._get_updates(offset, 0, limit=1)

    @staticmethod
    async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T:
        task = asyncio.ensure_future(work)
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            raise _Stopped
        return task.result()
