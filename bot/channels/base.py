"""What every channel agrees on with the gateway and the workers.

A channel turns a platform's webhook body into :class:`Inbound` messages (one per citizen
message or button press, each with the platform's own id for deduplication), turns a
Decision's approved reply into a list of platform calls (:class:`Outgoing`, each stored as
one outbox row before anything is sent) and performs those calls, raising
:class:`SendError` to say whether a failed call may be retried.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.brain.decision import Button

TEXT = "text"      # typed text (commands such as /start included)
BUTTON = "button"  # a press on a button Garda offered: ``text`` is its payload
MEDIA = "media"    # photo, voice, sticker, location, document...: ``detail`` says which

# Idle seconds before Garda drops a kept-alive connection to a platform. Servers commonly
# close idle connections after 5 s (uvicorn's default); reusing one at the moment the
# server closes it loses the reply: the request went out, so Garda must not repeat it.
# Dropping idle connections well before that makes the race rare.
KEEPALIVE_EXPIRY = 2.0


class MalformedUpdate(ValueError):
    """The body is not a well-formed update of a kind Garda accepts (answered with a 4xx)."""


@dataclass(frozen=True)
class Inbound:
    channel: str
    platform_id: str          # dedupe key: Telegram update_id, WhatsApp message id (wamid)
    chat_id: str              # where the reply goes: Telegram chat id, WhatsApp wa_id
    kind: str                 # TEXT, BUTTON or MEDIA
    text: str = ""            # the text or button payload; "" for media
    detail: str | None = None  # media type, for MEDIA
    sent_at: dt.datetime | None = None  # the platform's timestamp (UTC)
    reply_to: str | None = None         # platform message id to reply to (Telegram groups)
    callback_id: str | None = None      # Telegram callback query to answer
    is_group: bool = False


@dataclass(frozen=True)
class StatusEvent:
    """A delivery report for a message Garda sent (WhatsApp: sent, delivered, read, failed)."""

    channel: str
    platform_message_id: str
    status: str
    at: dt.datetime | None = None
    error: str | None = None  # a short code/title, never message content


@dataclass(frozen=True)
class Outgoing:
    """One platform call. ``payload`` is JSON-serialisable and stored in the outbox."""

    method: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendContext:
    chat_id: str
    last_inbound_at: dt.datetime | None  # for WhatsApp's 24-hour customer-service window
    is_group: bool = False


@dataclass(frozen=True)
class SendResult:
    platform_message_id: str | None


class SendError(Exception):
    """A platform call failed.

    ``retryable``: the platform did not take the message (connection refused, 429, 5xx) and
    the same call may be made again. ``retry_after``: seconds the platform asked to wait.
    A non-retryable error (4xx such as a blocked bot, or a message outside WhatsApp's
    window with no approved template) marks the outbox row failed.
    """

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


class Channel(Protocol):
    name: str

    def render(self, reply: str, buttons: Sequence[Button], inbound: Inbound) -> list[Outgoing]:
        """The platform calls that deliver one approved reply to ``inbound``'s chat."""
        ...

    async def send(self, call: Outgoing, context: SendContext) -> SendResult:
        """Make one call (waiting for the channel's own rate limits first)."""
        ...

    async def start(self) -> None:
        """Open HTTP clients, learn the bot's identity."""
        ...

    async def stop(self) -> None: ...


class RateLimiter(Protocol):
    async def wait(self, key: str, rate: float, burst: int) -> None:
        """Return once one more event under ``key`` keeps it within ``rate``/s (burst ``burst``)."""
        ...
