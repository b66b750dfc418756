"""Live notifications of ticket changes (bot/admin/live.py) and the console's event stream
(GET /admin/events).

The notifiers on their own (in process; through a real Redis server from tests/servers.py),
then the stream over real HTTP: the app under uvicorn on a loopback port, read with httpx,
while admins change tickets through the console; and a worker process's escalation
reaching a gateway process's console through Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from servers import RedisServer  # tests/servers.py
from stubs import free_port  # tests/stubs
from test_admin_console import RecordingChannel
from test_admin_group import KeywordSafety
from test_console_browser import browser, evidence_on_failure, wait_until  # noqa: F401
from test_runtime import KeywordParser

from bot.admin import console
from bot.admin.live import (
    CHANNEL,
    QUEUE_SIZE,
    InProcessNotifier,
    Notifier,
    RedisNotifier,
    make_notifier,
    ticket_event,
)
from bot.admin.users import Users
from bot.brain.decision import Decision
from bot.brain.pipeline import Brain
from bot.channels.base import TEXT, Inbound, Outgoing
from bot.config import Settings
from bot.content import Content
from bot.gateway.app import LiveServer, create_app
from bot.gateway.runtime import BrainRunner, Runtime
from bot.store.db import Database
from bot.store.queue import InProcessQueue
from bot.store.tickets import Ticket, Tickets, TicketSpec

PASSWORD = "kata-sandi-yang-panjang"
NIK = "3201234567890001"
CITIZEN_TEXT = f"saya mau bicara dengan petugas, NIK saya {NIK}"
REPLY = "Balasan rahasia dari petugas Dukcapil"
WAIT = 10.0


# -- the notifiers ------------------------------------------------------------------------


async def collect(subscription: Any, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while len(found) < count:
        event = await subscription.next(timeout)
        assert event is not None, f"only {found} arrived"
        found.append(event)
    return found


def test_the_in_process_notifier_delivers_to_every_open_subscription() -> None:
    async def scenario() -> None:
        notifier = InProcessNotifier()
        first, second, gone = notifier.subscribe(), notifier.subscribe(), notifier.subscribe()
        gone.close()
        assert notifier.subscribers == 2
        notifier.publish({"ticket": 3, "action": "claimed"})
        # Only the id and the action travel, whatever a caller puts in.
        notifier.publish({"ticket": 4, "action": "replied", "text": CITIZEN_TEXT,
                          "admin": "ani"})
        expected = [{"ticket": 3, "action": "claimed"}, {"ticket": 4, "action": "replied"}]
        assert await collect(first, 2) == expected
        assert await collect(second, 2) == expected
        assert await gone.next(0.05) is None
        # From another thread (a store call under asyncio.to_thread) too.
        await asyncio.to_thread(notifier.publish, ticket_event(5, "resolved"))
        assert await first.next(5.0) == {"ticket": 5, "action": "resolved"}
        assert await first.next(0.05) is None  # nothing else: a timeout, not an end
        with pytest.raises(ValueError):
            notifier.publish({"ticket": 6, "action": "deleted everything"})
        with pytest.raises(ValueError):
            notifier.publish({"ticket": "6; DROP TABLE", "action": "claimed"})
        # Shutting down ends every stream, and any opened afterwards at once.
        notifier.end_streams()
        assert [event async for event in second] == [{"ticket": 5, "action": "resolved"}]
        with pytest.raises(StopAsyncIteration):
            await first.next(1.0)
        late = notifier.subscribe()
        assert [event async for event in late] == []
        assert notifier.subscribers == 0

    asyncio.run(scenario())


def test_a_page_that_falls_behind_loses_events_but_still_sees_the_end() -> None:
    async def scenario() -> None:
        notifier = InProcessNotifier()
        slow = notifier.subscribe()
        for number in range(1, QUEUE_SIZE + 20):
            notifier.publish(ticket_event(number, "opened"))
        await notifier.close()
        await asyncio.sleep(0)  # the end is delivered to the full queue
        events = [event async for event in slow]
        # The first QUEUE_SIZE were kept, the rest dropped, and the oldest made room for
        # the end: the page reloads on what it has, and its stream still closes.
        assert [e["ticket"] for e in events] == list(range(2, QUEUE_SIZE + 1))

    asyncio.run(scenario())


def test_without_redis_the_embedded_default_is_in_process() -> None:
    assert isinstance(make_notifier(None), InProcessNotifier)
    assert isinstance(make_notifier("redis://127.0.0.1:1/0"), RedisNotifier)


def test_a_redis_outage_never_fails_the_admin_who_changed_a_ticket(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        notifier = RedisNotifier(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
        subscription = notifier.subscribe()
        notifier.publish(ticket_event(1, "claimed"))  # returns at once, raises nothing
        assert await subscription.ready(0.5) is False
        await notifier.close()
        assert [event async for event in subscription] == []

    asyncio.run(scenario())
    assert "live notification not sent" in caplog.text


@pytest.mark.servers
def test_redis_carries_events_between_notifiers_of_separate_processes(
        redis_url: str) -> None:
    async def scenario() -> None:
        import redis.asyncio as redis

        gateway, worker = RedisNotifier(redis_url), RedisNotifier(redis_url)
        raw = redis.Redis.from_url(redis_url)
        wire = raw.pubsub()
        try:
            await wire.subscribe(CHANNEL)
            assert (await wire.get_message(timeout=5.0))["type"] == "subscribe"
            page = gateway.subscribe()
            assert await page.ready(5.0)
            worker.publish({"ticket": 7, "action": "opened", "text": CITIZEN_TEXT})
            assert await page.next(5.0) == {"ticket": 7, "action": "opened"}
            # What crossed Redis: the id and the action, nothing else.
            message = await wire.get_message(ignore_subscribe_messages=True, timeout=5.0)
            assert json.loads(message["data"]) == {"ticket": 7, "action": "opened"}
            # The other way round, and a process sees its own changes through Redis too.
            other = worker.subscribe()
            assert await other.ready(5.0)
            gateway.publish(ticket_event(8, "claimed"))
            assert await other.next(5.0) == {"ticket": 8, "action": "claimed"}
            assert await page.next(5.0) == {"ticket": 8, "action": "claimed"}
            # Junk on the channel is ignored.
            await raw.publish(CHANNEL, json.dumps({"ticket": 9, "action": "x", "text": "y"}))
            await raw.publish(CHANNEL, "not json")
            gateway.publish(ticket_event(10, "released"))
            assert await page.next(5.0) == {"ticket": 10, "action": "released"}
        finally:
            await wire.reset()
            await raw.close()
            await gateway.close()
            await worker.close()

    asyncio.run(scenario())


@pytest.mark.servers
def test_the_redis_subscription_comes_back_after_redis_restarts(
        redis_server: RedisServer, redis_url: str) -> None:
    async def scenario() -> None:
        gateway, worker = RedisNotifier(redis_url), RedisNotifier(redis_url)
        try:
            page = gateway.subscribe()
            assert await page.ready(5.0)
            await asyncio.to_thread(redis_server.restart)
            deadline = time.monotonic() + WAIT
            while True:  # published until the gateway has subscribed again
                worker.publish(ticket_event(11, "escalated"))
                event = await page.next(0.5)
                if event is not None:
                    break
                assert time.monotonic() < deadline, "no event after Redis restarted"
            assert event == {"ticket": 11, "action": "escalated"}
        finally:
            await gateway.close()
            await worker.close()

    asyncio.run(scenario())


# -- the console's event stream over HTTP -------------------------------------------------


class Garda:
    """A gateway (the console; no workers) over SQLite, served by uvicorn on a free port."""

    def __init__(self, directory: Path, notifier: Notifier | None = None) -> None:
        url = f"sqlite:///{directory / 'garda.db'}"
        self.db = Database(url)
        self.db.upgrade()
        settings = Settings(database_url=url)
        self.runtime = Runtime(settings, self.db, InProcessQueue(),
                               {"test": RecordingChannel()}, role="gateway",
                               notifier=notifier)
        self.app = create_app(settings, self.runtime)
        self.tickets = Tickets(self.db.engine)
        self.users = Users(self.db.engine)
        self.chats = 0

    def login(self, name: str, role: str = "agent") -> tuple[dict[str, str], str]:
        """Cookie header and CSRF token of a new session for a new user."""
        self.users.add(name, PASSWORD, role)
        user = self.users.get(name)
        assert user is not None
        token, session = self.users.start_session(user)
        return {"Cookie": f"garda_admin={token}"}, session.csrf

    def escalate(self, text: str = CITIZEN_TEXT) -> Ticket:
        self.chats += 1
        chat = f"citizen-{self.chats}"
        stored = self.db.store_inbound(Inbound("test", f"m{self.chats}", chat, TEXT, text))
        message = self.db.claim_next(stored.conversation_id)
        assert message is not None
        decision = Decision(text=text, route="escalate", intent=None, confidence=0.9,
                            category="human_request", hoax_id=None, reply="Mohon tunggu.")
        self.db.save_decision(message, decision,
                              [Outgoing("sendMessage", {"chat_id": chat, "text": "tunggu"})],
                              ticket=TicketSpec("human_request", 3, dt.timedelta(minutes=60)))
        ticket = self.tickets.active(stored.conversation_id)
        assert ticket is not None
        return ticket


@dataclasses.dataclass
class Served:
    base: str
    server: LiveServer
    thread: threading.Thread


@contextlib.contextmanager
def serving(garda: Garda) -> Iterator[Served]:
    """uvicorn in a thread with the app's lifespan, as `garda run` serves it (LiveServer,
    10 s of graceful shutdown); stopped the way a SIGTERM stops it."""
    port = free_port()
    server = LiveServer(uvicorn.Config(
        garda.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
        access_log=False, ws="none", timeout_graceful_shutdown=10),
        garda.runtime.notifier.end_streams)
    thread = threading.Thread(target=server.run, name="garda-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app did not start")
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", server, thread)
    finally:
        server.handle_exit(signal.SIGTERM, None)
        thread.join(timeout=15)


class Stream:
    """An open /admin/events response, read line by line (a read waits at most 5 s)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()
        self.seen: list[str] = []

    def line(self) -> str:
        found = next(self.lines)
        self.seen.append(found)
        return found

    def event(self) -> dict[str, Any]:
        """The next event's data (comments and blank lines skipped)."""
        while True:
            found = self.line()
            if found.startswith("data: "):
                data: dict[str, Any] = json.loads(found[len("data: "):])
                return data


@contextlib.contextmanager
def events(base: str, headers: dict[str, str]) -> Iterator[Stream]:
    with httpx.Client(timeout=httpx.Timeout(5.0)) as client, client.stream(
            "GET", f"{base}/admin/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response)
        assert stream.line() == f"retry: {console.RETRY_MS}"  # subscribed from here on
        yield stream


def act(base: str, headers: dict[str, str], csrf: str, ticket: int, action: str,
        **data: str) -> None:
    response = httpx.post(f"{base}/admin/tickets/{ticket}/{action}", headers=headers,
                          data={"csrf": csrf, **data}, timeout=WAIT)
    assert response.status_code == 303, response.text


def test_the_event_stream_tells_an_open_console_of_every_change_and_nothing_more(
        tmp_path: Path) -> None:
    garda = Garda(tmp_path)
    viewer, _ = garda.login("trainer", "trainer")  # anyone who may see the queue
    agent, csrf = garda.login("ani")
    ticket = garda.escalate()
    with serving(garda) as served, events(served.base, viewer) as stream:
        act(served.base, agent, csrf, ticket.id, "claim")
        assert stream.event() == {"ticket": ticket.id, "action": "claimed"}
        act(served.base, agent, csrf, ticket.id, "reply", text=REPLY)
        assert stream.event() == {"ticket": ticket.id, "action": "replied"}
        act(served.base, agent, csrf, ticket.id, "release")
        assert stream.event() == {"ticket": ticket.id, "action": "released"}
        act(served.base, agent, csrf, ticket.id, "claim")
        assert stream.event() == {"ticket": ticket.id, "action": "claimed"}
        act(served.base, agent, csrf, ticket.id, "resolve", note="sudah dibantu")
        assert stream.event() == {"ticket": ticket.id, "action": "resolved"}
        second = garda.escalate()
        act(served.base, agent, csrf, second.id, "claim")
        act(served.base, agent, csrf, second.id, "hand_back")
        assert [stream.event() for _ in range(2)] == [
            {"ticket": second.id, "action": "claimed"},
            {"ticket": second.id, "action": "handed_back"}]
    body = "\n".join(stream.seen)
    for secret in (NIK, "petugas", REPLY, "sudah dibantu", "ani", "trainer"):
        assert secret not in body
    for line in stream.seen:
        if line.startswith("data: "):
            assert set(json.loads(line[6:])) == {"ticket", "action"}


def test_the_event_stream_needs_a_session(tmp_path: Path) -> None:
    garda = Garda(tmp_path)
    with serving(garda) as served:
        for headers in ({}, {"Cookie": "garda_admin=forged-token-forged-token-forged"}):
            response = httpx.get(f"{served.base}/admin/events", headers=headers, timeout=WAIT)
            assert response.status_code == 401
            assert not response.headers["content-type"].startswith("text/event-stream")
            assert console.SESSION_ENDED in response.text
        assert garda.runtime.notifier.subscribers == 0


def test_a_quiet_stream_sends_heartbeats_and_ends_with_its_session(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "HEARTBEAT_SECONDS", 0.2)
    garda = Garda(tmp_path)
    viewer, _ = garda.login("ani")
    with serving(garda) as served, events(served.base, viewer) as stream:
        assert stream.line() == ""
        assert stream.line() == ": ping"
        garda.users.set_disabled("ani", True)  # the session ends with it
        rest = list(stream.lines)  # the server closes the stream: no read timeout
        assert all(line in ("", ": ping") for line in rest)
        deadline = time.monotonic() + WAIT
        while garda.runtime.notifier.subscribers:
            assert time.monotonic() < deadline
            time.sleep(0.02)


def test_a_change_nobody_announced_is_found_in_sql_at_the_next_heartbeat(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQL is the record: a ticket opened by something that does not publish (here: the
    store directly) still reaches an open console, one heartbeat late; an announced change
    is not sent twice."""
    monkeypatch.setattr(console, "HEARTBEAT_SECONDS", 0.3)
    garda = Garda(tmp_path)
    viewer, _ = garda.login("ani")
    agent, csrf = garda.login("budi")
    with serving(garda) as served, events(served.base, viewer) as stream:
        quiet = garda.escalate()
        assert stream.event() == {"ticket": quiet.id, "action": "changed"}
        act(served.base, agent, csrf, quiet.id, "claim")
        event = stream.event()
        if event["action"] == "changed":  # a heartbeat fell between commit and publish
            event = stream.event()
        assert event == {"ticket": quiet.id, "action": "claimed"}
        after = len(stream.seen)
        for _ in range(3):  # heartbeats follow, and no "changed" for the announced claim
            while stream.line() != ": ping":
                pass
    assert not [line for line in stream.seen[after:] if line.startswith("data: ")]


def test_a_client_going_away_ends_its_subscription(tmp_path: Path) -> None:
    garda = Garda(tmp_path)
    viewer, _ = garda.login("ani")
    with serving(garda) as served:
        with events(served.base, viewer):
            assert garda.runtime.notifier.subscribers == 1
        deadline = time.monotonic() + WAIT
        while garda.runtime.notifier.subscribers:
            assert time.monotonic() < deadline, "the subscription outlived its client"
            time.sleep(0.02)


def test_a_shutdown_ends_open_streams_instead_of_waiting_for_them(tmp_path: Path) -> None:
    garda = Garda(tmp_path)
    viewer, _ = garda.login("ani")
    with serving(garda) as served, events(served.base, viewer) as stream:
        started = time.monotonic()
        served.server.handle_exit(signal.SIGTERM, None)  # as `garda run` gets a SIGTERM
        assert [line for line in stream.lines if line] == []  # ended, cleanly
        served.thread.join(timeout=WAIT)
        assert not served.thread.is_alive()
        assert time.monotonic() - started < 5.0  # well inside the 10 s grace period


# -- a worker's ticket reaching a gateway's console through Redis ---------------------------


@pytest.mark.servers
def test_a_ticket_opened_by_a_worker_process_reaches_the_gateways_console(
        tmp_path: Path, redis_url: str) -> None:
    garda = Garda(tmp_path, RedisNotifier(redis_url))  # the gateway process
    viewer, _ = garda.login("ani")
    settings = Settings(database_url=garda.db.url, redis_url=redis_url)

    async def worker_escalates(base: str) -> list[dict[str, Any]]:
        db = Database(settings.database_url)  # the worker process: its own engine, ...
        brain = BrainRunner(lambda: Brain(KeywordParser(), Content.load(),
                                          safety=KeywordSafety()))  # type: ignore[arg-type]
        worker = Runtime(settings, db, InProcessQueue(), {"test": RecordingChannel()},
                         role="worker", brain=brain,
                         notifier=RedisNotifier(redis_url))  # ... and its own notifier
        seen: list[dict[str, Any]] = []
        try:
            async with httpx.AsyncClient(timeout=5.0) as client, client.stream(
                    "GET", f"{base}/admin/events", headers=viewer) as response:
                lines = aiter_lines(response)
                assert await anext_line(lines) == f"retry: {console.RETRY_MS}"
                for number, text in enumerate(("saya mau bicara dengan petugas",
                                               "halo? masih di sana?"), 1):
                    stored = await worker.ingest(Inbound("test", f"w{number}", "citizen-w",
                                                         TEXT, text))
                    await worker.work_on(stored.conversation_id)
                    seen.append(await next_event(lines))
        finally:
            await worker.stop()
            db.dispose()
        return seen

    with serving(garda) as served:
        seen = asyncio.run(worker_escalates(served.base))
    ticket = garda.tickets.queue()[0]
    assert seen == [{"ticket": ticket.id, "action": "opened"},
                    {"ticket": ticket.id, "action": "message"}]  # the bot stepped back


def aiter_lines(response: httpx.Response) -> AsyncIterator[str]:
    return response.aiter_lines()


async def anext_line(lines: AsyncIterator[str]) -> str:
    return await asyncio.wait_for(lines.__anext__(), 5.0)


async def next_event(lines: AsyncIterator[str]) -> dict[str, Any]:
    while True:
        line = await anext_line(lines)
        if line.startswith("data: "):
            data: dict[str, Any] = json.loads(line[len("data: "):])
            return data


# -- in a real browser ----------------------------------------------------------------------


@pytest.mark.browser
def test_an_open_queue_in_chromium_shows_a_claim_at_once(
        tmp_path: Path, browser: Any) -> None:  # noqa: F811 (test_console_browser's fixture)
    """The queue's EventSource runs under the page's CSP (connect-src 'self') and reloads
    the rows on an event: a claim made elsewhere shows in well under the 30 s poll and the
    15 s heartbeat."""
    from selenium.webdriver.common.by import By

    garda = Garda(tmp_path)
    garda.users.add("budi", PASSWORD, "agent")
    agent, csrf = garda.login("ani")
    ticket = garda.escalate()
    driver = browser
    row = f'#rows tr[data-ticket="{ticket.id}"]'
    with serving(garda) as served, evidence_on_failure(driver, tmp_path):
        driver.get(f"{served.base}/admin/login")
        driver.find_element(By.CSS_SELECTOR, "input[name=name]").send_keys("budi")
        driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        wait_until(lambda: driver.current_url == f"{served.base}/admin/", "the queue")
        assert driver.find_element(By.CSS_SELECTOR, row).get_attribute("data-status") == "open"
        wait_until(lambda: garda.runtime.notifier.subscribers == 1, "the page's EventSource")
        started = time.monotonic()
        act(served.base, agent, csrf, ticket.id, "claim")
        wait_until(lambda: driver.find_element(By.CSS_SELECTOR, row).get_attribute(
            "data-status") == "claimed", "the row to show the claim", timeout=5.0)
        assert time.monotonic() - started < 5.0
        cells = [td.text for td in driver.find_element(By.CSS_SELECTOR, row)
                 .find_elements(By.TAG_NAME, "td")]
        assert cells[5] == "diambil" and cells[6] == "ani"
