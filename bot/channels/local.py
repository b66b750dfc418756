"""The local channel: the terminal chat, through the same path as Telegram and WhatsApp.

A typed line becomes an inbound row, goes through the queue and a worker, and its reply is
an outbox row "sent" here: to the waiting terminal. What a developer sees is what a
citizen gets.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import asdict

from bot.brain.decision import Button
from bot.channels.base import Inbound, Outgoing, SendContext, SendResult

SAY = "say"


class LocalChannel:
    name = "local"

    def __init__(self) -> None:
        self._inboxes: dict[str, asyncio.Queue[dict]] = {}
        self._ids = itertools.count(1)

    def inbox(self, chat_id: str) -> asyncio.Queue[dict]:
        return self._inboxes.setdefault(chat_id, asyncio.Queue())

    def render(self, reply: str, buttons: Sequence[Button], inbound: Inbound) -> list[Outgoing]:
        return [Outgoing(SAY, {"text": reply, "buttons": [asdict(b) for b in buttons]})]

    async def send(self, call: Outgoing, context: SendContext) -> SendResult:
        self.inbox(context.chat_id).put_nowait(call.payload)
        return SendResult(f"local-{next(self._ids)}")

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
