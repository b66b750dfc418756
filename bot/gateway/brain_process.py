"""The brain in a process of its own, so that Garda uses a second core.

Deciding is Python-heavy (Rasa's graph, scipy, sklearn) and holds the GIL; in the same
process as the web app and the outbox it would cap the whole of Garda at one core. Here
the model lives in one child process (spawned, so no TensorFlow state is forked) and the
gateway's event loop only awaits a future. Media replies and the failure reply need no
model and are built in the parent. If the child dies (killed, out of memory) it is
started again and the message is tried once more.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from bot.brain.decision import Decision
from bot.channels.base import MEDIA

logger = logging.getLogger(__name__)

_brain: Any = None
_loop: asyncio.AbstractEventLoop | None = None


def _child_start() -> None:
    """Runs once in the child: load the model."""
    global _brain, _loop
    from bot import logs
    from bot.brain.pipeline import Brain

    logs.configure()
    _loop = asyncio.new_event_loop()
    _brain = Brain.load()


def _child_ready() -> bool:
    return _brain is not None


def _child_decide(text: str) -> Decision:
    assert _loop is not None and _brain is not None
    return _loop.run_until_complete(_brain.decide(text, None))


class ProcessBrainRunner:
    """Same interface as :class:`bot.gateway.runtime.BrainRunner`, one model in a child."""

    def __init__(self) -> None:
        from bot.brain.pipeline import Brain
        from bot.content import Content

        self._local = Brain(None, Content.load())  # renders approved replies; no model
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        self.ready.clear()
        self.error = None
        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=_child_start,
        )
        self._pool.submit(_child_ready).add_done_callback(self._loaded)

    def _loaded(self, future: Future[bool]) -> None:
        error = future.exception()
        if error is not None:
            self.error = error
            logger.error("the brain could not be loaded: %s", type(error).__name__)
        self.ready.set()

    async def wait_ready(self) -> None:
        await asyncio.to_thread(self.ready.wait)
        if self.error is not None:
            raise RuntimeError("the brain could not be loaded") from self.error

    async def decide(self, message: Any) -> Decision:
        if message.kind == MEDIA:
            return self._local.media(None, message.detail)
        for attempt in (1, 2):
            await self.wait_ready()
            pool = self._pool
            assert pool is not None
            try:
                return await asyncio.wrap_future(pool.submit(_child_decide, message.text))
            except BrokenProcessPool:
                if attempt == 2:
                    raise
                logger.error("the brain process died; starting it again")
                with self._lock:
                    if self._pool is pool:
                        pool.shutdown(wait=False, cancel_futures=True)
                        self._start()
        raise AssertionError("unreachable")

    def failure(self, message: Any) -> Decision:
        return self._local.failure(message.text)

    def escalation(self, message: Any, category: str, like: Decision) -> Decision:
        return self._local.escalation(message.text, category, None, like.confidence, like.intent)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
