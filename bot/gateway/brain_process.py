"""The brain in a process of its own, so that Garda uses a second core.

Deciding is Python-heavy (Rasa's graph, scipy, sklearn) and holds the GIL; in the same
process as the web app and the outbox it would cap the whole of Garda at one core. Here
the model lives in one child process (spawned, so no TensorFlow state is forked) and the
gateway's event loop only awaits a future. Media replies and the failure reply need no
model and are built in the parent. If the child dies (killed, out of memory) it is
started again and the message is tried once more.

The parent follows the model registry (bot/trainer/registry.py): when a promotion or a
rollback changes models/registry/CURRENT, it starts a second child with that version,
waits until it has loaded, sends new messages to it and lets the old child finish what
it was given before it exits. Nothing is dropped or decided twice; a version that fails
to load leaves the old child answering.
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


def _child_start(model_id: str | None = None) -> None:
    """Runs once in the child: load the model (a registry id; None: the active one)."""
    global _brain, _loop
    from bot import config, logs
    from bot.brain.pipeline import Brain

    logs.configure()
    _loop = asyncio.new_event_loop()
    # Answers and clarifications approved in the console are served within seconds.
    _brain = Brain.load(model_id=model_id).follow_approvals(config.load().database_url)


def _child_ready() -> str | None:
    """The id of the model the child loaded."""
    return None if _brain is None else _brain.model_id


def _child_decide(text: str) -> Decision:
    assert _loop is not None and _brain is not None
    return _loop.run_until_complete(_brain.decide(text, None))


class ProcessBrainRunner:
    """Same interface as :class:`bot.gateway.runtime.BrainRunner`, one model in a child."""

    def __init__(self, follow_registry: bool = True) -> None:
        from bot import config
        from bot.brain.pipeline import Brain
        from bot.content import Content
        from bot.trainer.registry import ActiveWatch, Registry

        # Renders the replies decided here (media, failures, escalations); no model.
        self._local = Brain(None, Content.load()).follow_approvals(config.load().database_url)
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.model_id: str | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        # Made before the active id is read, so a promotion in between is not missed.
        watch = ActiveWatch() if follow_registry else None
        self._wanted = Registry().active_id()
        self._start()
        if watch is not None:
            threading.Thread(target=self._watch, args=(watch,), name="garda-model-watch",
                             daemon=True).start()

    def _new_pool(self, model_id: str) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=_child_start, initargs=(model_id,),
        )

    def _start(self) -> None:
        self.ready.clear()
        self.error = None
        self._pool = self._new_pool(self._wanted)
        self._pool.submit(_child_ready).add_done_callback(self._loaded)

    def _loaded(self, future: Future[str | None]) -> None:
        error = future.exception()
        if error is not None:
            self.error = error
            logger.error("the brain could not be loaded: %s", type(error).__name__)
        else:
            self._serving(future.result())
        self.ready.set()

    def _serving(self, model_id: str | None) -> None:
        from bot.gateway.runtime import show_model

        show_model(self.model_id, model_id)
        self.model_id = model_id

    def _watch(self, watch: Any) -> None:
        from bot.trainer.registry import poll_seconds

        while not self._closed.wait(poll_seconds()):
            wanted = watch.poll()
            if wanted is not None and wanted != self._wanted:
                self.swap(wanted)

    def swap(self, model_id: str) -> bool:
        """Start a child with ``model_id``, wait until it has loaded, then send new
        messages to it; the old child finishes the ones it has and exits."""
        pool = self._new_pool(model_id)
        try:
            loaded = pool.submit(_child_ready).result()
        except Exception as error:
            from bot.gateway import metrics

            metrics.ERRORS.labels("model_load").inc()
            logger.error("model %s could not be loaded (%s); still answering with %s",
                         model_id, type(error).__name__, self.model_id)
            pool.shutdown(wait=False, cancel_futures=True)
            return False
        if self._closed.is_set():
            pool.shutdown(wait=False, cancel_futures=True)
            return False
        with self._lock:
            old, self._pool = self._pool, pool
            self._wanted, self.error = model_id, None
        previous = self.model_id
        self._serving(loaded)
        self.ready.set()
        if old is not None:
            old.shutdown(wait=False)  # what it was given is still decided, then it exits
        logger.warning("now answering with model %s (was %s)", loaded, previous)
        return True

    async def wait_ready(self) -> None:
        await asyncio.to_thread(self.ready.wait)
        if self.error is not None:
            raise RuntimeError("the brain could not be loaded") from self.error

    async def decide(self, message: Any) -> Decision:
        if message.kind == MEDIA:
            return self._local.media(None, message.detail)
        for attempt in (1, 2):
            await self.wait_ready()
            try:
                with self._lock:  # never a pool that a model swap has just shut down
                    pool = self._pool
                    assert pool is not None
                    future = pool.submit(_child_decide, message.text)
                return await asyncio.wrap_future(future)
            except BrokenProcessPool:
                if attempt == 2:
                    raise
                logger.error("the brain process died; starting it again")
                with self._lock:
                    if pool is not None and self._pool is pool:
                        pool.shutdown(wait=False, cancel_futures=True)
                        self._start()
        raise AssertionError("unreachable")

    def failure(self, message: Any) -> Decision:
        return self._local.failure(message.text)

    def render(self, name: str) -> str:
        """An approved response as served now (approved versions included)."""
        return str(self._local.content.render(name))

    def escalation(self, message: Any, category: str, like: Decision) -> Decision:
        return self._local.escalation(message.text, category, None, like.confidence, like.intent)

    def close(self) -> None:
        self._closed.set()
        self._serving(None)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
