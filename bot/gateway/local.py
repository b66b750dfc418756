"""The terminal chat, through the gateway path (inbound row, queue, worker, outbox)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bot.channels.base import BUTTON, TEXT, Inbound
from bot.channels.local import LocalChannel
from bot.config import Settings
from bot.gateway.runtime import BrainRunner, Runtime
from bot.store.db import Database
from bot.store.queue import InProcessQueue


async def chat_session(
    runtime: Runtime, local: LocalChannel, read: Callable[[str], str],
    write: Callable[[str], None],
) -> None:
    session = uuid.uuid4().hex[:12]
    chat_id = f"terminal-{session}"
    buttons: list[dict[str, str]] = []
    await runtime.start()
    try:
        for number in range(1, 1_000_000):
            try:
                text = await asyncio.to_thread(read, "Anda  > ")
            except (EOFError, KeyboardInterrupt):
                write("")
                return
            choice = text.strip()
            kind = TEXT
            if buttons and choice.isdigit() and 1 <= int(choice) <= len(buttons):
                text, kind = buttons[int(choice) - 1]["payload"], BUTTON
            await runtime.ingest(Inbound("local", f"{session}-{number}", chat_id, kind, text))
            reply = await local.inbox(chat_id).get()
            write("Garda > " + str(reply["text"]).replace("\n", "\n        "))
            buttons = list(reply.get("buttons") or [])
            for index, button in enumerate(buttons, 1):
                write(f"        [{index}] {button['title']}")
            write("")
    finally:
        await runtime.stop()


def chat_loop(brain: Any, read: Callable[[str], str], write: Callable[[str], None],
              settings: Settings | None = None) -> None:
    """The terminal conversation: a typed number picks one of the buttons just shown."""
    from bot import config

    settings = replace(settings or config.load(), worker_concurrency=1)
    db = Database(settings.database_url)
    db.upgrade()
    local = LocalChannel()

    async def run() -> None:
        runtime = Runtime(settings, db, InProcessQueue(), {"local": local},
                          brain=BrainRunner(lambda: brain))
        await chat_session(runtime, local, read, write)

    try:
        asyncio.run(run())
    finally:
        db.dispose()
