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
from bot.gateway.runtime import HANDOFF, BrainRunner, Runtime
from bot.store.db import Database
from bot.store.queue import InProcessQueue

HANDED_TO_PEOPLE = ("(Pesan diteruskan kepada petugas. Balasan petugas akan muncul di sini; "
                    "asisten otomatis menunggu sampai petugas mengembalikan percakapan.)")
REPLY_WAIT = 120.0  # seconds a typed line waits for its reply before the prompt returns


async def chat_session(
    runtime: Runtime, local: LocalChannel, read: Callable[[str], str],
    write: Callable[[str], None],
) -> None:
    """Read lines, and print every reply as it comes: the bot's, and, while people have the
    conversation (an escalation), the admins' replies from the console."""
    session = uuid.uuid4().hex[:12]
    chat_id = f"terminal-{session}"
    buttons: list[dict[str, str]] = []
    printed = asyncio.Event()

    async def show_replies() -> None:
        nonlocal buttons
        inbox = local.inbox(chat_id)
        while True:
            reply = await inbox.get()
            write("Garda > " + str(reply["text"]).replace("\n", "\n        "))
            buttons = list(reply.get("buttons") or [])
            for index, button in enumerate(buttons, 1):
                write(f"        [{index}] {button['title']}")
            write("")
            printed.set()

    await runtime.start()
    printer = asyncio.create_task(show_replies())
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
            printed.clear()
            stored = await runtime.ingest(
                Inbound("local", f"{session}-{number}", chat_id, kind, text))
            if not await _replied_or_handed_off(runtime, stored.inbound_id, printed):
                write(HANDED_TO_PEOPLE)
                write("")
    finally:
        printer.cancel()
        await runtime.stop()


async def _replied_or_handed_off(runtime: Runtime, inbound_id: int | None,
                                 printed: asyncio.Event) -> bool:
    """Wait for the reply to one line. False when the line went to people instead."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REPLY_WAIT
    while loop.time() < deadline:
        try:
            await asyncio.wait_for(printed.wait(), timeout=0.1)
            return True
        except asyncio.TimeoutError:
            pass
        if inbound_id is not None and await asyncio.to_thread(
                runtime.db.inbound_route, inbound_id) == HANDOFF:
            return False
    return True


def chat_loop(brain: Any, read: Callable[[str], str], write: Callable[[str], None],
              settings: Settings | None = None, console: bool = False) -> None:
    """The terminal conversation: a typed number picks one of the buttons just shown.

    With ``console``, the admins' web console is served beside it on
    ``GARDA_HOST:GARDA_PORT`` (same process, same queue), so an escalated terminal
    conversation can be answered from ``/admin``.
    """
    from bot import config

    settings = replace(settings or config.load(), worker_concurrency=1)
    db = Database(settings.database_url)
    db.upgrade()
    local = LocalChannel()

    async def run() -> None:
        runtime = Runtime(settings, db, InProcessQueue(), {"local": local},
                          brain=BrainRunner(lambda: brain))
        server = await _serve_console(settings, runtime, write) if console else None
        try:
            await chat_session(runtime, local, read, write)
        finally:
            if server is not None:
                server.should_exit = True

    try:
        asyncio.run(run())
    finally:
        db.dispose()


async def _serve_console(settings: Settings, runtime: Runtime,
                         write: Callable[[str], None]) -> Any:
    """Start the web app (the console) in this loop; None, with a note, if it cannot."""
    import uvicorn

    from bot.gateway.app import create_app

    class Quiet(uvicorn.Server):
        def install_signal_handlers(self) -> None:  # the terminal chat owns Ctrl-C
            return None

    # lifespan off: the chat session starts and stops the runtime itself.
    server = Quiet(uvicorn.Config(create_app(settings, runtime), host=settings.host,
                                  port=settings.port, log_config=None, access_log=False,
                                  lifespan="off", ws="none"))
    task = asyncio.create_task(server.serve())
    for _ in range(100):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    if not server.started:
        task.cancel()
        write(f"(Konsol admin tidak dapat dibuka di {settings.host}:{settings.port}; "
              "obrolan tetap berjalan.)")
        return None
    write(f"Konsol admin: http://{settings.host}:{settings.port}/admin "
          "(buat pengguna dengan `garda admin add-user`).")
    return server
