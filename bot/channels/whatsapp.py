"""The WhatsApp Cloud API channel (Meta's Graph API).

Inbound: Meta POSTs webhook bodies signed with the app secret (``X-Hub-Signature-256``,
HMAC-SHA256 over the raw bytes: :func:`verify_signature`) after a one-time GET handshake
(:func:`verify_handshake`). :func:`parse_webhook` turns a body into :class:`Inbound`
messages (one per citizen message, keyed by its ``wamid``) and :class:`StatusEvent`
delivery reports.

Outbound: :meth:`WhatsAppChannel.render` turns an approved reply and its buttons into
``POST /{phone-number-id}/messages`` bodies (plain text, reply buttons or a list), and
:meth:`WhatsAppChannel.send` makes one such call. Free-form messages may only be sent within
24 hours of the citizen's last message; outside that window the channel sends the configured
approved template instead, or refuses.

Nothing here logs a token, a message body or a phone number: only HTTP statuses, Graph
error codes and message ids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from bot.brain.decision import Button
from bot.channels.base import (
    BUTTON,
    KEEPALIVE_EXPIRY,
    MEDIA,
    TEXT,
    Inbound,
    MalformedUpdate,
    Outgoing,
    SendContext,
    SendError,
    SendResult,
    StatusEvent,
)
from bot.channels.text import SEPARATORS, split_text, units
from bot.config import ConfigError, Settings

log = logging.getLogger(__name__)
# httpx logs every request line (with its URL) at INFO: keep that out of Garda's logs.
logging.getLogger("httpx").setLevel(logging.WARNING)

CHANNEL = "whatsapp"
OBJECT = "whatsapp_business_account"
SEND_METHOD = "messages"

# Limits of the Cloud API's message objects (characters).
TEXT_LIMIT = 4096
INTERACTIVE_BODY_LIMIT = 1024  # reply-button bodies; used for list bodies too (theirs is larger)
MAX_REPLY_BUTTONS = 3
BUTTON_TITLE_LIMIT = 20
MAX_LIST_ROWS = 10
ROW_TITLE_LIMIT = 24
ROW_DESCRIPTION_LIMIT = 72
PAYLOAD_ID_LIMIT = 256  # reply-button ids
ROW_ID_LIMIT = 200  # list-row ids
# The only text the channel adds to approved replies: the list's button and section labels.
LIST_BUTTON_LABEL = "Pilih topik"
LIST_SECTION_TITLE = "Topik"
ELLIPSIS = "…"

WINDOW = dt.timedelta(hours=24)

MEDIA_TYPES = frozenset(
    {"image", "audio", "video", "document", "sticker", "location", "contacts", "voice"}
)
# Not questions from the citizen: a reaction to an earlier message, and WhatsApp's own
# notices (such as "the customer changed their number").
SKIPPED_TYPES = frozenset({"reaction", "system"})

# Graph error codes that mean "not now" whatever the HTTP status (Meta advises handling
# errors by code): temporary outage, app / account / throughput / pair rate limits,
# generic server errors.
RETRYABLE_CODES = frozenset({2, 4, 80007, 130429, 131000, 131056, 133004})


# --- inbound -----------------------------------------------------------------------------


def verify_signature(raw_body: bytes, header: str | None, app_secret: str) -> bool:
    """Whether ``header`` (``X-Hub-Signature-256``) signs exactly ``raw_body``."""
    if not header or not app_secret:
        return False
    scheme, sep, received = header.strip().partition("=")
    if not sep or scheme.lower() != "sha256" or not received:
        return False
    expected = hmac.new(app_secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), received.strip().lower().encode())


def verify_handshake(params: Mapping[str, str], verify_token: str) -> str | None:
    """The ``hub.challenge`` to echo for Meta's subscription GET, or None to refuse it."""
    if params.get("hub.mode") != "subscribe" or not verify_token:
        return None
    token = params.get("hub.verify_token") or ""
    if not hmac.compare_digest(token.encode("utf-8"), verify_token.encode("utf-8")):
        return None
    return params.get("hub.challenge")


def _timestamp(value: Any) -> dt.datetime | None:
    try:
        seconds = int(str(value))
    except (TypeError, ValueError):
        return None
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedUpdate(f"{where} is not a list")
    return value


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedUpdate(f"{where} is not an object")
    return value


def _id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise MalformedUpdate(f"{where} is missing")
    return str(value)


def _message(message: Any) -> Inbound | None:
    message = _dict(message, "message")
    platform_id = _id(message.get("id"), "message id")
    chat_id = _id(message.get("from"), "message sender")
    kind_name = message.get("type")
    if not isinstance(kind_name, str) or not kind_name:
        raise MalformedUpdate("message type is missing")
    sent_at = _timestamp(message.get("timestamp"))

    def inbound(kind: str, text: str = "", detail: str | None = None) -> Inbound:
        return Inbound(channel=CHANNEL, platform_id=platform_id, chat_id=chat_id, kind=kind,
                       text=text, detail=detail, sent_at=sent_at)

    if kind_name in SKIPPED_TYPES:
        return None
    if kind_name == "text":
        body = _dict(message.get("text"), "text").get("body")
        if not isinstance(body, str):
            raise MalformedUpdate("text body is missing")
        return inbound(TEXT, body)
    if kind_name == "interactive":
        interactive = _dict(message.get("interactive"), "interactive")
        for key in ("button_reply", "list_reply"):
            if key in interactive:
                reply_id = _dict(interactive[key], key).get("id")
                if not isinstance(reply_id, str) or not reply_id:
                    raise MalformedUpdate(f"{key} id is missing")
                return inbound(BUTTON, reply_id)
        # Other interactive replies (flows, products) are nothing Garda offered.
        return inbound(MEDIA, detail=f"interactive:{interactive.get('type') or 'unknown'}")
    if kind_name == "button":
        button = _dict(message.get("button"), "button")
        payload = button.get("payload") or button.get("text")
        if not isinstance(payload, str) or not payload:
            raise MalformedUpdate("button payload is missing")
        return inbound(BUTTON, payload)
    # Media, and anything WhatsApp marks unsupported or Garda does not know.
    return inbound(MEDIA, detail=kind_name)


def _error_summary(errors: Any) -> str | None:
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None
    first = errors[0]
    code = first.get("code")
    title = first.get("title")
    parts = [str(code) if isinstance(code, (int, str)) and not isinstance(code, bool) else ""]
    if isinstance(title, str) and title:
        parts.append(title[:100])
    summary = " ".join(p for p in parts if p)
    return summary or "error"


def _status(status: Any) -> StatusEvent:
    status = _dict(status, "status")
    state = status.get("status")
    if not isinstance(state, str) or not state:
        raise MalformedUpdate("status value is missing")
    return StatusEvent(
        channel=CHANNEL,
        platform_message_id=_id(status.get("id"), "status id"),
        status=state,
        at=_timestamp(status.get("timestamp")),
        error=_error_summary(status.get("errors")),
    )


def parse_webhook(
    data: Any, phone_number_id: str | None
) -> tuple[list[Inbound], list[StatusEvent]]:
    """The messages and delivery reports in one Cloud API webhook body.

    Changes addressed to another phone number id than ``phone_number_id`` (when given) are
    ignored. Raises :class:`MalformedUpdate` when the body is not a Cloud API webhook.
    """
    if not isinstance(data, dict):
        raise MalformedUpdate("body is not an object")
    if data.get("object") != OBJECT:
        raise MalformedUpdate("object is not whatsapp_business_account")
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise MalformedUpdate("entry is not a list")
    inbound: list[Inbound] = []
    statuses: list[StatusEvent] = []
    for entry in entries:
        entry = _dict(entry, "entry")
        for change in _list(entry.get("changes"), "changes"):
            change = _dict(change, "change")
            value = change.get("value")
            if value is None:
                continue
            value = _dict(value, "value")
            metadata = value.get("metadata")
            if phone_number_id is not None and isinstance(metadata, dict):
                ours = str(metadata.get("phone_number_id") or "")
                if ours and ours != str(phone_number_id):
                    continue
            for message in _list(value.get("messages"), "messages"):
                parsed = _message(message)
                if parsed is not None:
                    inbound.append(parsed)
            statuses.extend(_status(s) for s in _list(value.get("statuses"), "statuses"))
    return inbound, statuses


# --- rendering ---------------------------------------------------------------------------


def _prefix_within(text: str, limit: int) -> int:
    """The largest ``n`` such that ``text[:n]`` fits ``limit``."""
    if units(text) <= limit:
        return len(text)
    n = min(len(text), limit)
    while n > 0 and units(text[:n]) > limit:
        n -= 1
    return n


def _suffix_within(text: str, limit: int) -> int:
    """The smallest ``start`` such that ``text[start:]`` fits ``limit``."""
    start = max(0, len(text) - limit)
    while start < len(text) and units(text[start:]) > limit:
        start += 1
    return start


def split_tail(text: str, limit: int) -> tuple[str, str]:
    """``(head, tail)`` with ``tail`` at most ``limit``, broken at a paragraph, line or space."""
    text = text.strip()
    if units(text) <= limit:
        return "", text
    start = _suffix_within(text, limit)
    for sep in SEPARATORS:
        # The first separator whose remainder fits: the longest tail of whole paragraphs.
        at = text.find(sep, max(1, start - len(sep)))
        if at != -1 and text[at + len(sep):].strip():
            head, tail = text[:at].rstrip(), text[at + len(sep):].strip()
            if head and units(tail) <= limit:
                return head, tail
    return text[:start].rstrip(), text[start:].strip()


def _truncate(text: str, limit: int) -> str:
    if units(text) <= limit:
        return text
    return text[: _prefix_within(text, limit - units(ELLIPSIS))].rstrip() + ELLIPSIS


def _usable(buttons: Sequence[Button]) -> list[Button]:
    """Buttons WhatsApp can carry: a title, a payload of at most 256 characters, no duplicates."""
    seen: set[str] = set()
    usable: list[Button] = []
    for button in buttons:
        if not button.title.strip() or not button.payload or button.payload in seen:
            continue
        if len(button.payload) > PAYLOAD_ID_LIMIT:
            log.warning("whatsapp: dropped a button whose payload is %d characters (limit %d)",
                        len(button.payload), PAYLOAD_ID_LIMIT)
            continue
        seen.add(button.payload)
        usable.append(button)
    return usable


class WhatsAppChannel:
    """Sends replies through the Cloud API; see the module docstring."""

    name = CHANNEL

    def __init__(
        self,
        settings: Settings,
        *,
        template: tuple[str, str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        if settings.whatsapp_token is None:
            raise ConfigError("GARDA_WHATSAPP_TOKEN is not set")
        if not settings.whatsapp_phone_number_id:
            raise ConfigError("GARDA_WHATSAPP_PHONE_NUMBER_ID is not set")
        self._settings = settings
        self._phone_number_id = settings.whatsapp_phone_number_id
        self._template = template
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    # -- lifecycle

    async def start(self) -> None:
        if self._client is not None:
            return
        self._client = httpx.AsyncClient(
            base_url=self._settings.whatsapp_api_url,
            headers={"Authorization": f"Bearer {self._settings.whatsapp_token!s}"},
            timeout=httpx.Timeout(self._timeout),
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY),
        )

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- rendering

    def _base(self, to: str) -> dict[str, Any]:
        return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}

    def _text(self, to: str, body: str) -> Outgoing:
        payload = self._base(to)
        payload.update(type="text", text={"body": body, "preview_url": False})
        return Outgoing(SEND_METHOD, payload)

    def render(self, reply: str, buttons: Sequence[Button], inbound: Inbound) -> list[Outgoing]:
        to = inbound.chat_id
        usable = _usable(buttons)
        if not usable:
            return [self._text(to, piece) for piece in split_text(reply, TEXT_LIMIT)]
        head, tail = split_tail(reply, INTERACTIVE_BODY_LIMIT)
        calls = [self._text(to, piece) for piece in split_text(head, TEXT_LIMIT)]
        # An interactive message needs a body; an empty reply gets the list's fixed label.
        body = tail or LIST_BUTTON_LABEL
        fits_buttons = len(usable) <= MAX_REPLY_BUTTONS and all(
            units(b.title) <= BUTTON_TITLE_LIMIT for b in usable
        )
        if fits_buttons:
            action: dict[str, Any] = {
                "buttons": [
                    {"type": "reply", "reply": {"id": b.payload, "title": b.title}}
                    for b in usable
                ]
            }
            kind = "button"
        else:
            if len(usable) > MAX_LIST_ROWS:
                log.warning("whatsapp: %d buttons offered, a list shows the first %d",
                            len(usable), MAX_LIST_ROWS)
            rows: list[dict[str, Any]] = []
            fitting = [b for b in usable if len(b.payload) <= ROW_ID_LIMIT]
            if len(fitting) < len(usable):
                log.warning("whatsapp: dropped %d list rows whose payload exceeds %d characters",
                            len(usable) - len(fitting), ROW_ID_LIMIT)
            for b in fitting[:MAX_LIST_ROWS]:
                title = _truncate(b.title, ROW_TITLE_LIMIT)
                row: dict[str, Any] = {"id": b.payload, "title": title}
                if title != b.title:
                    row["description"] = _truncate(b.title, ROW_DESCRIPTION_LIMIT)
                rows.append(row)
            if not rows:
                return [*calls, *(self._text(to, p) for p in split_text(tail, TEXT_LIMIT))]
            action = {
                "button": LIST_BUTTON_LABEL,
                "sections": [{"title": LIST_SECTION_TITLE, "rows": rows}],
            }
            kind = "list"
        payload = self._base(to)
        payload.update(
            type="interactive",
            interactive={"type": kind, "body": {"text": body}, "action": action},
        )
        calls.append(Outgoing(SEND_METHOD, payload))
        return calls

    # -- sending

    def _template_payload(self, to: str) -> dict[str, Any]:
        assert self._template is not None
        name, language = self._template
        payload = self._base(to)
        payload.update(type="template", template={"name": name, "language": {"code": language}})
        return payload

    @staticmethod
    def _inside_window(last_inbound_at: dt.datetime | None) -> bool:
        if last_inbound_at is None:
            return False
        if last_inbound_at.tzinfo is None:  # stored as naive UTC
            last_inbound_at = last_inbound_at.replace(tzinfo=dt.timezone.utc)
        return dt.datetime.now(dt.timezone.utc) - last_inbound_at < WINDOW

    async def send(self, call: Outgoing, context: SendContext) -> SendResult:
        if call.method != SEND_METHOD:
            raise SendError(f"unknown whatsapp call {call.method!r}", retryable=False)
        if self._client is None:
            raise RuntimeError("WhatsAppChannel.send before start()")
        payload = call.payload
        to = str(payload.get("to") or context.chat_id)
        if payload.get("type") != "template" and not self._inside_window(context.last_inbound_at):
            if self._template is None:
                raise SendError("outside the 24-hour window and no approved template",
                                retryable=False)
            payload = self._template_payload(to)
            log.info("whatsapp: outside the 24-hour window, sending the approved template")
        try:
            response = await self._client.post(f"/{self._phone_number_id}/messages", json=payload)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                httpx.WriteTimeout, httpx.WriteError) as exc:
            # The request never reached the platform: safe to make again.
            raise SendError(f"whatsapp unreachable: {type(exc).__name__}", retryable=True) from None
        except httpx.TransportError as exc:
            # Sent but unanswered: it may have been delivered, so it is not repeated.
            raise SendError(f"whatsapp no response: {type(exc).__name__}",
                            retryable=False) from None
        return self._result(response)

    @staticmethod
    def _result(response: httpx.Response) -> SendResult:
        status = response.status_code
        try:
            data = response.json()
        except ValueError:
            data = None
        if 200 <= status < 300:
            wamid = None
            if isinstance(data, dict):
                messages = data.get("messages")
                if isinstance(messages, list) and messages and isinstance(messages[0], dict):
                    value = messages[0].get("id")
                    wamid = str(value) if value else None
            log.info("whatsapp: sent status=%s wamid=%s", status, wamid)
            return SendResult(platform_message_id=wamid)
        code, message = _graph_error(data)
        reason = f"whatsapp HTTP {status}"
        if code is not None:
            reason += f" code {code}"
        if message:
            reason += f": {message}"
        retryable = status == 429 or status >= 500 or code in RETRYABLE_CODES
        retry_after = _retry_after(response.headers.get("Retry-After")) if retryable else None
        log.warning("whatsapp: send failed status=%s code=%s retryable=%s",
                    status, code, retryable)
        raise SendError(reason, retryable=retryable, retry_after=retry_after)


_LONG_NUMBER = re.compile(r"\+?\d[\d ()-]{6,}\d")


def _graph_error(data: Any) -> tuple[int | None, str]:
    """The Graph error code and a short message (long digit runs, such as numbers, removed)."""
    if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
        return None, ""
    error = data["error"]
    code = error.get("code")
    if isinstance(code, bool) or not isinstance(code, int):
        try:
            code = int(str(code))
        except ValueError:
            code = None
    message = error.get("message")
    if not isinstance(message, str):
        return code, ""
    message = _LONG_NUMBER.sub("<number>", message.replace(f"(#{code})", "").strip())
    return code, message[:120]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
