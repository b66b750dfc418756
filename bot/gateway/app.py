"""Garda's web app (Starlette, served by uvicorn).

    POST /webhooks/telegram   Telegram updates (webhook mode), secret token checked
    GET  /webhooks/whatsapp   WhatsApp Cloud API verification handshake
    POST /webhooks/whatsapp   WhatsApp messages and delivery statuses, signature checked
    GET  /healthz             the process is up
    GET  /readyz              database, queue (and, in a worker, the model) are usable
    GET  /metrics             Prometheus metrics
    /admin/...                the admins' web console (bot.admin.console)

A webhook is acknowledged (200) only once its message is stored and queued; when the
database or the queue is down it answers 503, so the platform delivers it again. Refusals
are checked in this order, and nothing is stored on any of them: origin (403), size
(413), content type (415), JSON (400), shape (422).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from bot.admin.console import Console
from bot.admin.live import make_notifier
from bot.channels.base import Inbound, MalformedUpdate
from bot.config import Settings
from bot.gateway import metrics
from bot.gateway.runtime import (
    GATEWAY,
    ROLES,
    WORKER,
    BrainRunner,
    Runtime,
    StoreUnavailable,
)
from bot.store.db import Database
from bot.store.queue import QueueUnavailable, make_queue

logger = logging.getLogger(__name__)


class BodyTooLarge(Exception):
    pass


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == (
        "application/json")


def _same(given: str | None, expected: Any) -> bool:
    if given is None or expected is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), str(expected).encode("utf-8"))


class Gateway:
    """The app's state: settings, the runtime, and the channels' parsers."""

    def __init__(self, settings: Settings, runtime: Runtime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.telegram: Any = runtime.channels.get("telegram")
        self.whatsapp: Any = runtime.channels.get("whatsapp")
        self.receives = GATEWAY in runtime.roles
        self._stop_polling = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        # The admins' Telegram group (bot/admin/telegram_group.py): urgent tickets are
        # posted there; its updates are diverted to it and never become citizen messages.
        self.admin_group: Any = None
        if settings.telegram_admin_chat_id is not None and self.telegram is not None:
            from bot.admin.telegram_group import AdminGroup

            self.admin_group = AdminGroup.for_runtime(settings, runtime)
        self._admin_listening = False

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        if self.admin_group is not None and not self._admin_listening:
            self.runtime.on_escalation(self.admin_group.on_escalation)
            self._admin_listening = True
        await self.runtime.start()
        if not (self.receives and self.telegram is not None):
            return
        if self.settings.public_url:
            await self.telegram.set_webhook(
                f"{self.settings.public_url}/webhooks/telegram",
                str(self.settings.telegram_webhook_secret),
            )
        else:
            self._poller = asyncio.create_task(self._poll(), name="telegram-poller")

    async def stop(self) -> None:
        self._stop_polling.set()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poller
        if self.admin_group is not None:
            await self.admin_group.stop()
        await self.runtime.stop()

    async def _poll(self) -> None:
        """Long polling, by one gateway process at a time (a queue lock elects it)."""
        while not self._stop_polling.is_set():
            try:
                async with self.runtime.queue.lock("telegram-poller") as held:
                    if held:
                        await self.telegram.poll(self._take_polled, self._stop_polling)
                        continue
            except QueueUnavailable:
                pass
            except Exception:
                logger.exception("telegram polling stopped; starting again")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop_polling.wait(), 5.0)

    async def _take_polled(self, update: dict[str, Any]) -> bool:
        from bot.channels.telegram import parse_update

        if self.admin_group is not None and self.admin_group.owns(update):
            await self.admin_group.handle(update)  # the admins' group: never a citizen's
            return True
        try:
            message = parse_update(update, self.telegram.bot, self.telegram.username)
        except MalformedUpdate:
            metrics.REJECTED.labels("telegram", "malformed").inc()
            return True
        if message is None:
            metrics.IGNORED.labels("telegram").inc()
            return True
        try:
            await self.runtime.ingest(message)
        except (StoreUnavailable, QueueUnavailable):
            return False
        return True

    # -- endpoints --------------------------------------------------------------------

    async def _keep(self, channel: str, messages: list[Inbound]) -> Response | None:
        try:
            for message in messages:
                await self.runtime.ingest(message)
        except StoreUnavailable:
            return _error(503, "storage unavailable, retry later")
        except QueueUnavailable:
            return _error(503, "queue unavailable, retry later")
        return None

    def _reject(self, channel: str, status: int, reason: str, message: str) -> JSONResponse:
        metrics.REJECTED.labels(channel, reason).inc()
        return _error(status, message)

    async def telegram_webhook(self, request: Request) -> Response:
        started = time.perf_counter()
        if not self.receives or self.telegram is None:
            return _error(404, "telegram is not configured here")
        secret = self.settings.telegram_webhook_secret
        if not _same(request.headers.get("x-telegram-bot-api-secret-token"), secret):
            return self._reject("telegram", 403, "secret", "bad or missing secret token")
        try:
            body = await read_body(request, self.settings.max_body_bytes)
        except BodyTooLarge:
            return self._reject("telegram", 413, "too_large", "body too large")
        if not _is_json(request):
            return self._reject("telegram", 415, "content_type", "expected application/json")
        try:
            data = json.loads(body)
        except ValueError:
            return self._reject("telegram", 400, "json", "body is not valid JSON")
        if self.admin_group is not None and self.admin_group.owns(data):
            await self.admin_group.handle(data)  # the admins' group: never a citizen's
            return JSONResponse({"ok": True})
        from bot.channels.telegram import parse_update

        try:
            message = parse_update(data, self.telegram.bot, self.telegram.username)
        except MalformedUpdate as error:
            return self._reject("telegram", 422, "malformed", str(error))
        if message is None:
            metrics.IGNORED.labels("telegram").inc()
            return JSONResponse({"ok": True, "ignored": True})
        failed = await self._keep("telegram", [message])
        if failed is not None:
            return failed
        metrics.ACK_SECONDS.labels("telegram").observe(time.perf_counter() - started)
        return JSONResponse({"ok": True})

    async def whatsapp_verify(self, request: Request) -> Response:
        if not self.receives or self.whatsapp is None:
            return _error(404, "whatsapp is not configured here")
        from bot.channels.whatsapp import verify_handshake

        challenge = verify_handshake(dict(request.query_params),
                                     str(self.settings.whatsapp_verify_token))
        if challenge is None:
            return self._reject("whatsapp", 403, "verify_token", "verification failed")
        return PlainTextResponse(challenge)

    async def whatsapp_webhook(self, request: Request) -> Response:
        started = time.perf_counter()
        if not self.receives or self.whatsapp is None:
            return _error(404, "whatsapp is not configured here")
        from bot.channels.whatsapp import parse_webhook, verify_signature

        try:
            body = await read_body(request, self.settings.max_body_bytes)
        except BodyTooLarge:
            return self._reject("whatsapp", 413, "too_large", "body too large")
        if not verify_signature(body, request.headers.get("x-hub-signature-256"),
                                str(self.settings.whatsapp_app_secret)):
            return self._reject("whatsapp", 403, "signature", "bad or missing signature")
        if not _is_json(request):
            return self._reject("whatsapp", 415, "content_type", "expected application/json")
        try:
            data = json.loads(body)
        except ValueError:
            return self._reject("whatsapp", 400, "json", "body is not valid JSON")
        try:
            messages, statuses = parse_webhook(data, self.settings.whatsapp_phone_number_id)
        except MalformedUpdate as error:
            return self._reject("whatsapp", 422, "malformed", str(error))
        try:
            await self.runtime.record_statuses(statuses)
        except StoreUnavailable:
            return _error(503, "storage unavailable, retry later")
        failed = await self._keep("whatsapp", messages)
        if failed is not None:
            return failed
        metrics.ACK_SECONDS.labels("whatsapp").observe(time.perf_counter() - started)
        return JSONResponse({"ok": True})

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        checks = await self.runtime.readiness()
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    async def metrics(self, request: Request) -> Response:
        with contextlib.suppress(Exception):
            metrics.QUEUE_DEPTH.set(await asyncio.to_thread(self.runtime.db.backlog))
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


def build_runtime(settings: Settings, role: str = "all", *, load_brain: Any = None,
                  channels: dict[str, Any] | None = None) -> Runtime:
    """Stores, queue, channels and (for workers) the brain, from the settings."""
    db = Database(settings.database_url)
    db.upgrade()
    queue = make_queue(settings.redis_url)
    if channels is None:
        channels = make_channels(settings)
    brain: Any = None
    if WORKER in ROLES[role]:
        if load_brain is None:
            from bot.gateway.brain_process import ProcessBrainRunner

            brain = ProcessBrainRunner()
        else:
            brain = BrainRunner(load_brain)
    return Runtime(settings, db, queue, channels, role=role, brain=brain,
                   notifier=make_notifier(settings.redis_url))


def make_channels(settings: Settings) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    if settings.telegram_enabled:
        from bot.channels.telegram import TelegramChannel
        from bot.store.ratelimit import InProcessRateLimiter, RedisRateLimiter

        limiter: Any
        if settings.redis_url:
            from bot.store.redis_client import connect

            limiter = RedisRateLimiter(connect(settings.redis_url))
        else:
            limiter = InProcessRateLimiter()
        channels["telegram"] = TelegramChannel(settings, limiter)
    if settings.whatsapp_enabled:
        from bot.channels.whatsapp import WhatsAppChannel

        channels["whatsapp"] = WhatsAppChannel(settings, template=settings.whatsapp_template)
    return channels


def serve(settings: Settings, role: str = "all") -> None:
    """Run the web app (and, by role, the workers) until SIGINT/SIGTERM."""
    import uvicorn

    runtime = build_runtime(settings, role)
    app = create_app(settings, runtime)
    logger.warning("Garda %s listening on http://%s:%s", role, settings.host, settings.port)
    # ws="none": Garda serves no websockets, and uvicorn's websockets support needs a newer
    # `websockets` than Rasa pins.
    server = LiveServer(uvicorn.Config(
        app, host=settings.host, port=settings.port, log_config=None, access_log=False,
        lifespan="on", ws="none", timeout_graceful_shutdown=10), runtime.notifier.end_streams)
    server.run()
    if not server.started:
        raise SystemExit(3)  # as uvicorn.run does when the app did not start


class LiveServer(uvicorn.Server):
    """uvicorn, telling the console's event streams to end as soon as it is told to stop.

    uvicorn waits for open responses before it shuts the app down, and an event stream
    never finishes by itself: without this, every open console page would hold a shutdown
    up for the whole grace period and then be cancelled."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


def create_app(settings: Settings, runtime: Runtime) -> Starlette:
    gateway = Gateway(settings, runtime)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = Starlette(
        routes=[
            Route("/webhooks/telegram", gateway.telegram_webhook, methods=["POST"]),
            Route("/webhooks/whatsapp", gateway.whatsapp_verify, methods=["GET"]),
            Route("/webhooks/whatsapp", gateway.whatsapp_webhook, methods=["POST"]),
            Route("/healthz", gateway.healthz, methods=["GET"]),
            Route("/readyz", gateway.readyz, methods=["GET"]),
            Route("/metrics", gateway.metrics, methods=["GET"]),
            Mount("/admin", routes=Console(runtime).routes()),
        ],
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    return app
