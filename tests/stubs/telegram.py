"""A Telegram Bot API stub: the real URL scheme (``/bot<token>/<method>``), the real JSON
envelopes (``{"ok": true, "result": ...}`` / ``{"ok": false, "error_code", "description"}``)
and the checks Telegram makes that Garda must satisfy (HTML entities, 4096 characters,
64-byte callback data).

Run it with :func:`stubs.serve`; point ``Settings.telegram_api_url`` at the URL it yields.
Builders at the bottom produce update JSON as Telegram sends it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

BOT_USERNAME = "GardaSukamajuBot"
BOT_NAME = "Garda Sukamaju"
MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64
# Values PTB sends as plain strings in a form body; every other value is JSON-encoded.
STRING_PARAMS = {
    "text", "parse_mode", "callback_query_id", "url", "secret_token", "ip_address",
    "caption", "business_connection_id", "message_effect_id",
}
# Tags Telegram's HTML parse mode knows.
HTML_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
    "a", "code", "pre", "blockquote", "tg-emoji",
}
_TOKEN = re.compile(
    r"<(?P<close>/?)(?P<tag>[a-zA-Z][\w-]*)(?P<attrs>(?:\s+[^<>]*)?)>"
    r"|&(?P<entity>lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);"
    r"|(?P<bad><|&)"
)
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class EntityError(ValueError):
    pass


def html_visible_text(text: str) -> str:
    """The text a user sees after Telegram parses HTML; EntityError where Telegram says 400."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        out.append(text[pos:match.start()])
        pos = match.end()
        if match.group("bad"):
            raise EntityError(f"Unsupported start tag or bare {match.group('bad')!r} "
                              f"at byte offset {len(text[:match.start()].encode())}")
        entity = match.group("entity")
        if entity is not None:
            if entity.startswith("#x"):
                out.append(chr(int(entity[2:], 16)))
            elif entity.startswith("#"):
                out.append(chr(int(entity[1:])))
            else:
                out.append(_ENTITIES[entity])
            continue
        tag = match.group("tag").lower()
        if tag not in HTML_TAGS:
            raise EntityError(f'Unsupported start tag "{tag}"')
        if match.group("close"):
            if not stack or stack[-1] != tag:
                raise EntityError(f'Unmatched end tag "{tag}"')
            stack.pop()
        else:
            stack.append(tag)
    out.append(text[pos:])
    if stack:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]
    at: float  # time.monotonic() when the stub received it
    status: int = 200


@dataclass
class _Failure:
    status: int
    body: dict[str, Any]


@dataclass
class Webhook:
    url: str = ""
    secret_token: str | None = None
    allowed_updates: list[str] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def _error(status: int, description: str, **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


class TelegramStub:
    """The Bot API for one bot token. Thread-safe: the server runs in its own thread."""

    def __init__(self, token: str, *, max_poll_wait: float = 1.0) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1
        self.max_poll_wait = max_poll_wait
        self.webhook = Webhook()
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._updates: list[dict[str, Any]] = []
        self._failures: dict[str, list[_Failure]] = {}
        self._blocked: set[str] = set()
        self._delays: dict[str, list[float]] = {}
        self._message_ids = itertools.count(1)
        # Messages the bot sent (for editMessageText), and chat members (getChatMember).
        self._messages: dict[tuple[str, int], dict[str, Any]] = {}
        self._members: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}
        self.app = Starlette(routes=[
            Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"]),
        ])

    # -- test helpers --

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def sent(self) -> list[dict[str, Any]]:
        """Parameters of the sendMessage calls Telegram accepted, in order."""
        return [c.params for c in self.calls_to("sendMessage") if c.status == 200]

    def push_update(self, update: dict[str, Any]) -> None:
        with self._lock:
            self._updates.append(update)

    def pending_updates(self) -> list[int]:
        with self._lock:
            return [u["update_id"] for u in self._updates]

    def block(self, chat_id: int | str) -> None:
        """The user blocked the bot: sendMessage to this chat answers 403."""
        with self._lock:
            self._blocked.add(str(chat_id))

    def unblock(self, chat_id: int | str) -> None:
        with self._lock:
            self._blocked.discard(str(chat_id))

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int = 1,
        description: str | None = None,
    ) -> None:
        """The next call to ``method`` fails with ``status`` (429: flood control)."""
        if status == 429:
            body = _error(429, description or f"Too Many Requests: retry after {retry_after}",
                          retry_after=retry_after)
        else:
            default = {
                400: "Bad Request: chat not found",
                403: "Forbidden: bot was blocked by the user",
                500: "Internal Server Error",
                502: "Bad Gateway",
            }.get(status, "Error")
            body = _error(status, description or default)
        with self._lock:
            self._failures.setdefault(method, []).append(_Failure(status, body))

    def set_member(self, chat_id: int, user_id: int, status: str = "member",
                   username: str | None = None) -> None:
        """getChatMember for this user in this chat answers ``status`` (creator,
        administrator, member, restricted, left, kicked); unknown users are "left"."""
        with self._lock:
            self._members[(str(chat_id), user_id)] = (status, _user(user_id, username))

    def message(self, chat_id: int | str, message_id: int) -> dict[str, Any] | None:
        """A message the bot sent, as it stands now (after any edits)."""
        with self._lock:
            found = self._messages.get((str(chat_id), message_id))
            return dict(found) if found is not None else None

    def delay_next(self, method: str, seconds: float) -> None:
        """The next call to ``method`` is carried out, but answered ``seconds`` late."""
        with self._lock:
            self._delays.setdefault(method, []).append(seconds)

    # -- the API --

    async def _params(self, request: Request) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for key, value in request.query_params.items():
            params[key] = self._decode(key, value)
        body = await request.body()
        if not body:
            return params
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("body is not an object")
            params.update(data)
        elif content_type.startswith("application/x-www-form-urlencoded"):
            for key, value in parse_qsl(body.decode(), keep_blank_values=True):
                params[key] = self._decode(key, value)
        else:
            raise ValueError(f"unsupported content type {content_type!r}")
        return params

    @staticmethod
    def _decode(key: str, value: str) -> Any:
        if key in STRING_PARAMS:
            return value
        try:
            return json.loads(value)
        except ValueError:
            return value

    def _record(self, method: str, params: dict[str, Any], at: float, status: int) -> None:
        with self._lock:
            self._calls.append(Call(method, params, at, status))

    async def _endpoint(self, request: Request) -> JSONResponse:
        at = time.monotonic()
        method = request.path_params["method"]
        if request.path_params["token"] != self.token:
            return JSONResponse(_error(401, "Unauthorized"), status_code=401)
        try:
            params = await self._params(request)
        except ValueError:
            return JSONResponse(_error(400, "Bad Request: invalid request body"), 400)
        with self._lock:
            queue = self._failures.get(method)
            failure = queue.pop(0) if queue else None
        if failure is not None:
            self._record(method, params, at, failure.status)
            return JSONResponse(failure.body, status_code=failure.status)
        handler = {
            "getMe": self._get_me,
            "sendMessage": self._send_message,
            "answerCallbackQuery": self._answer_callback_query,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getUpdates": self._get_updates,
            "getChatMember": self._get_chat_member,
            "editMessageText": self._edit_message_text,
        }.get(method)
        if handler is None:
            self._record(method, params, at, 404)
            return JSONResponse(_error(404, "Not Found"), status_code=404)
        status, body = await handler(params)
        self._record(method, params, at, status)
        with self._lock:
            delays = self._delays.get(method)
            delay = delays.pop(0) if delays else 0.0
        if delay:
            await asyncio.sleep(delay)
        return JSONResponse(body, status_code=status)

    def bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": BOT_NAME,
                "username": BOT_USERNAME}

    async def _get_me(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        user = {**self.bot_user(), "can_join_groups": True,
                "can_read_all_group_messages": False, "supports_inline_queries": False}
        return 200, {"ok": True, "result": user}

    async def _send_message(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id = params.get("chat_id")
        if chat_id in (None, "") or isinstance(chat_id, (dict, list, bool, float)):
            return 400, _error(400, "Bad Request: chat_id is empty")
        if str(chat_id) in self._blocked:
            return 403, _error(403, "Forbidden: bot was blocked by the user")
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return 400, _error(400, "Bad Request: message text is empty")
        parse_mode = params.get("parse_mode")
        if parse_mode not in (None, "HTML"):
            return 400, _error(400, f"Bad Request: unsupported parse_mode {parse_mode}")
        visible = text
        if parse_mode == "HTML":
            try:
                visible = html_visible_text(text)
            except EntityError as exc:
                return 400, _error(400, f"Bad Request: can't parse entities: {exc}")
        if not visible.strip():
            return 400, _error(400, "Bad Request: message text is empty")
        if utf16_len(visible) > MAX_TEXT:
            return 400, _error(400, "Bad Request: message is too long")
        markup = params.get("reply_markup")
        if markup is not None:
            problem = _check_markup(markup)
            if problem:
                return 400, _error(400, f"Bad Request: {problem}")
        reply = params.get("reply_parameters")
        if reply is not None and not (
            isinstance(reply, dict) and isinstance(reply.get("message_id"), int)
        ):
            return 400, _error(400, "Bad Request: invalid reply parameters")
        numeric = isinstance(chat_id, int) or re.fullmatch(r"-?\d+", str(chat_id))
        chat_value = int(chat_id) if numeric else chat_id
        chat: dict[str, Any] = (
            {"id": chat_value, "type": "supergroup", "title": "Grup Warga"}
            if str(chat_id).startswith("-")
            else {"id": chat_value, "type": "private", "first_name": "Warga"}
        )
        with self._lock:
            message_id = next(self._message_ids)
        message: dict[str, Any] = {
            "message_id": message_id, "from": self.bot_user(), "chat": chat,
            "date": int(time.time()), "text": visible,
        }
        if markup is not None:
            message["reply_markup"] = markup
        with self._lock:
            self._messages[(str(chat_value), message_id)] = message
        return 200, {"ok": True, "result": message}

    async def _edit_message_text(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            return 400, _error(400, "Bad Request: message identifier is not specified")
        key = (str(params.get("chat_id")), message_id)
        with self._lock:
            current = self._messages.get(key)
        if current is None:
            return 400, _error(400, "Bad Request: message to edit not found")
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return 400, _error(400, "Bad Request: message text is empty")
        visible = text
        if params.get("parse_mode") == "HTML":
            try:
                visible = html_visible_text(text)
            except EntityError as exc:
                return 400, _error(400, f"Bad Request: can't parse entities: {exc}")
        if utf16_len(visible) > MAX_TEXT:
            return 400, _error(400, "Bad Request: message is too long")
        markup = params.get("reply_markup")
        if markup is not None:
            problem = _check_markup(markup)
            if problem:
                return 400, _error(400, f"Bad Request: {problem}")
        if visible == current["text"] and markup == current.get("reply_markup"):
            return 400, _error(400, "Bad Request: message is not modified: specified new "
                                    "message content and reply markup are exactly the same "
                                    "as a current content and reply markup of the message")
        edited = {**current, "text": visible, "edit_date": int(time.time())}
        edited.pop("reply_markup", None)
        if markup is not None:
            edited["reply_markup"] = markup
        with self._lock:
            self._messages[key] = edited
        return 200, {"ok": True, "result": edited}

    async def _get_chat_member(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        user_id = params.get("user_id")
        if not isinstance(user_id, int):
            return 400, _error(400, "Bad Request: invalid user_id specified")
        with self._lock:
            status, user = self._members.get((str(params.get("chat_id")), user_id),
                                             ("left", _user(user_id)))
        return 200, {"ok": True, "result": _chat_member(status, user)}

    async def _answer_callback_query(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not params.get("callback_query_id"):
            return 400, _error(400, "Bad Request: query is too old and response timeout "
                                    "expired or query ID is invalid")
        return 200, {"ok": True, "result": True}

    async def _set_webhook(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        url = params.get("url")
        if not isinstance(url, str):
            return 400, _error(400, "Bad Request: bad webhook: url is empty")
        if url and not url.startswith("https://"):
            return 400, _error(400, "Bad Request: bad webhook: An HTTPS URL must be provided "
                                    "for webhook")
        with self._lock:
            self.webhook.url = url
            self.webhook.secret_token = params.get("secret_token")
            self.webhook.allowed_updates = params.get("allowed_updates")
            self.webhook.history.append(dict(params))
        return 200, {"ok": True, "result": True, "description": "Webhook was set"}

    async def _delete_webhook(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.webhook.url = ""
            self.webhook.secret_token = None
            if params.get("drop_pending_updates") is True:
                self._updates.clear()
        return 200, {"ok": True, "result": True, "description": "Webhook was deleted"}

    async def _get_updates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if self.webhook.url:
                return 409, _error(409, "Conflict: can't use getUpdates method while "
                                        "webhook is active; use deleteWebhook to delete "
                                        "the webhook first")
        offset = params.get("offset")
        limit = params.get("limit") or 100
        timeout = params.get("timeout") or 0
        allowed = params.get("allowed_updates")
        deadline = time.monotonic() + min(float(timeout), self.max_poll_wait)
        while True:
            with self._lock:
                if isinstance(offset, int):
                    # Telegram forgets every update below the offset: they are confirmed.
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                ready = [
                    u for u in self._updates
                    if not allowed or any(key in u for key in allowed)
                ][: int(limit)]
            if ready or time.monotonic() >= deadline:
                return 200, {"ok": True, "result": ready}
            await asyncio.sleep(0.01)


def _check_markup(markup: Any) -> str | None:
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list):
        return "object expected as reply markup"
    for row in rows:
        if not isinstance(row, list):
            return "field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array"
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                return "text buttons are unallowed in the inline keyboard"
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
                return "BUTTON_DATA_INVALID"
    return None


# --- update builders (the JSON Telegram sends) -----------------------------------------

_CHAT_TITLES = {"group": "Grup RT 05", "supergroup": "Warga Sukamaju"}


def _chat(chat_id: int, chat_type: str) -> dict[str, Any]:
    if chat_type == "private":
        return {"id": chat_id, "type": "private", "first_name": "Siti"}
    return {"id": chat_id, "type": chat_type, "title": _CHAT_TITLES.get(chat_type, "Kanal")}


def _user(user_id: int, username: str | None = None) -> dict[str, Any]:
    user = {"id": user_id, "is_bot": False, "first_name": "Siti", "language_code": "id"}
    if username is not None:
        user["username"] = username
    return user


_ADMIN_RIGHTS = {
    "can_be_edited": False, "is_anonymous": False, "can_manage_chat": True,
    "can_delete_messages": True, "can_manage_video_chats": True, "can_restrict_members": True,
    "can_promote_members": False, "can_change_info": True, "can_invite_users": True,
    "can_post_stories": False, "can_edit_stories": False, "can_delete_stories": False,
}
_RESTRICTIONS = {
    "is_member": True, "can_change_info": False, "can_invite_users": False,
    "can_pin_messages": False, "can_send_messages": True, "can_send_polls": False,
    "can_send_other_messages": False, "can_add_web_page_previews": False,
    "can_manage_topics": False, "until_date": 0, "can_send_audios": False,
    "can_send_documents": False, "can_send_photos": False, "can_send_videos": False,
    "can_send_video_notes": False, "can_send_voice_notes": False, "can_edit_tag": False,
}


def _chat_member(status: str, user: dict[str, Any]) -> dict[str, Any]:
    """A ChatMember object as getChatMember returns it, with the fields its status has."""
    member: dict[str, Any] = {"status": status, "user": user}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        member.update(_ADMIN_RIGHTS)
    elif status == "restricted":
        member.update(_RESTRICTIONS)
    elif status == "kicked":
        member["until_date"] = 0
    return member


def _bot_user(bot_id: int = 7000001) -> dict[str, Any]:
    return {"id": bot_id, "is_bot": True, "first_name": BOT_NAME, "username": BOT_USERNAME}


def auto_entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram adds by itself: a leading /command and @mentions."""
    entities = []
    for match in re.finditer(r"(?<![\w/@])@\w{5,32}|(?<!\S)/\w+(?:@\w+)?", text):
        offset = utf16_len(text[:match.start()])
        kind = "mention" if match.group().startswith("@") else "bot_command"
        entities.append({"type": kind, "offset": offset, "length": utf16_len(match.group())})
    return entities


def _message(update_id: int, chat_id: int, chat_type: str, user_id: int | None,
             message_id: int | None, date: int | None,
             username: str | None = None) -> dict[str, Any]:
    return {
        "message_id": message_id if message_id is not None else 100 + update_id,
        "from": _user(user_id if user_id is not None else (abs(chat_id) % 10**9 or 42),
                      username),
        "chat": _chat(chat_id, chat_type),
        "date": date if date is not None else int(time.time()),
    }


def text_update(
    update_id: int,
    chat_id: int,
    text: str,
    user_id: int | None = None,
    chat_type: str = "private",
    message_id: int | None = None,
    reply_to_bot: bool = False,
    entities: list[dict[str, Any]] | None = None,
    date: int | None = None,
    reply_to_message_id: int | None = None,
    username: str | None = None,
) -> dict[str, Any]:
    """A text message. ``entities=None`` adds the entities Telegram would (commands,
    mentions); pass ``[]`` for none. ``reply_to_message_id``: a reply to that message of
    the bot's."""
    message = _message(update_id, chat_id, chat_type, user_id, message_id, date, username)
    message["text"] = text
    found = auto_entities(text) if entities is None else entities
    if found:
        message["entities"] = found
    if reply_to_bot:
        message["reply_to_message"] = {
            "message_id": message["message_id"] - 1,
            "from": _bot_user(),
            "chat": _chat(chat_id, chat_type),
            "date": message["date"] - 60,
            "text": "Ada yang bisa kami bantu?",
        }
    if reply_to_message_id is not None:
        message["reply_to_message"] = {
            "message_id": reply_to_message_id,
            "from": _bot_user(),
            "chat": _chat(chat_id, chat_type),
            "date": message["date"] - 60,
            "text": "Tiket #1",
        }
    return {"update_id": update_id, "message": message}


def callback_update(
    update_id: int,
    chat_id: int,
    data: str,
    user_id: int | None = None,
    chat_type: str = "private",
    message_id: int | None = None,
    query_id: str | None = None,
    with_message: bool = True,
    username: str | None = None,
) -> dict[str, Any]:
    """A press on an inline button under one of the bot's messages."""
    query: dict[str, Any] = {
        "id": query_id or f"{4400000000 + update_id}",
        "from": _user(user_id if user_id is not None else (abs(chat_id) % 10**9 or 42),
                      username),
        "chat_instance": "-53421234567890",
        "data": data,
    }
    if with_message:
        query["message"] = {
            "message_id": message_id if message_id is not None else 50 + update_id,
            "from": _bot_user(),
            "chat": _chat(chat_id, chat_type),
            "date": int(time.time()) - 30,
            "text": "Pilih topik:",
        }
    return {"update_id": update_id, "callback_query": query}


_FILE = {"file_id": "AgACAgUAAxkBAAIBZ2Zx", "file_unique_id": "AQADx7sxG"}
MEDIA: dict[str, Any] = {
    "photo": [
        {**_FILE, "file_size": 1234, "width": 90, "height": 67},
        {**_FILE, "file_unique_id": "AQADx7sxG2", "file_size": 56789, "width": 800,
         "height": 600},
    ],
    "voice": {**_FILE, "duration": 4, "mime_type": "audio/ogg", "file_size": 7000},
    "audio": {**_FILE, "duration": 180, "mime_type": "audio/mpeg", "title": "Lagu"},
    "video": {**_FILE, "width": 640, "height": 360, "duration": 12},
    "video_note": {**_FILE, "length": 240, "duration": 8},
    "sticker": {**_FILE, "width": 512, "height": 512, "is_animated": False,
                "is_video": False, "type": "regular", "emoji": "\U0001F44D"},
    "location": {"latitude": -6.914744, "longitude": 107.60981},
    "document": {**_FILE, "file_name": "KTP.pdf", "mime_type": "application/pdf",
                 "file_size": 120000},
    "contact": {"phone_number": "+6281234567890", "first_name": "Budi"},
    "dice": {"emoji": "\U0001F3B2", "value": 3},
}


def media_update(
    update_id: int,
    chat_id: int,
    kind: str,
    user_id: int | None = None,
    chat_type: str = "private",
    caption: str | None = None,
    message_id: int | None = None,
) -> dict[str, Any]:
    """A non-text message: photo, voice, audio, video, video_note, sticker, location,
    venue, document, animation, contact or dice."""
    message = _message(update_id, chat_id, chat_type, user_id, message_id, None)
    if kind == "venue":
        message["location"] = MEDIA["location"]
        message["venue"] = {"location": MEDIA["location"], "title": "Kantor Desa",
                            "address": "Jl. Merdeka 1"}
    elif kind == "animation":
        animation = {**_FILE, "width": 320, "height": 240, "duration": 3}
        message["animation"] = animation
        message["document"] = {**_FILE, "file_name": "a.mp4", "mime_type": "video/mp4"}
    elif kind in MEDIA:
        message[kind] = MEDIA[kind]
    else:
        raise ValueError(f"no builder for media kind {kind!r}")
    if caption is not None:
        message["caption"] = caption
        found = auto_entities(caption)
        if found:
            message["caption_entities"] = found
    return {"update_id": update_id, "message": message}
