"""The admins' console in a real browser: headless Chromium, driven by Selenium, against the
real app served by uvicorn on a loopback port (SQLite in tmp_path; a runtime with its
workers, whose channel records what it sends).

An agent logs in, finds the escalated ticket in the queue, opens it, claims it, answers
the citizen and hands the conversation back with a note; the test checks what the browser
shows, what the database holds, and that a worker sent the reply through the channel.

It also shows what the in-process tests cannot: the Secure cookies work over plain http on
127.0.0.1 (a secure context for Chromium), the inline scripts run under the page's
Content-Security-Policy nonce (the quick replies fill the reply box; the queue refreshes
itself), and forms and redirects pass `form-action 'self'`.

Chromium and chromedriver come from Debian's packages (scripts/setup.sh installs them when
it can), at fixed paths, so Selenium Manager never downloads anything. Without them the
test is skipped, or fails when GARDA_REQUIRE_SERVERS=1 (CI). On failure a screenshot and
the page's HTML are saved in the test's tmp_path.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select
from stubs import free_port  # tests/stubs
from test_runtime import KeywordParser

from bot.admin.live import ticket_event
from bot.admin.users import Users
from bot.brain.decision import Button, Decision
from bot.brain.pipeline import Brain
from bot.channels.base import TEXT, Inbound, Outgoing, SendContext, SendResult
from bot.config import Settings
from bot.content import Content
from bot.gateway.app import LiveServer, create_app
from bot.gateway.runtime import BrainRunner, Runtime
from bot.store import models
from bot.store.db import Database
from bot.store.queue import InProcessQueue
from bot.store.tickets import Ticket, Tickets, TicketSpec

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
AGENT = "budi"
PASSWORD = "kata-sandi-yang-panjang"
CITIZEN_TEXT = "saya mau bicara dengan petugas soal KTP saya"
HOLDING = "Mohon tunggu sebentar, petugas kami akan membalas."
REPLY = "Halo, saya Budi dari Dukcapil. KTP Anda sudah bisa diambil besok pukul 09.00."
NOTE = "sudah dijawab; bot bisa lanjut"
WAIT = 10.0  # seconds for anything the browser or the worker should do


class SendingChannel:
    """Renders a reply as one call and records what a worker sends (from uvicorn's thread)."""

    name = "test"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def render(self, reply: str, buttons: Sequence[Button], inbound: Inbound) -> list[Outgoing]:
        return [Outgoing("sendMessage", {"chat_id": inbound.chat_id, "text": reply})]

    async def send(self, call: Outgoing, context: SendContext) -> SendResult:
        self.sent.append((context.chat_id, call.payload["text"]))
        return SendResult(str(len(self.sent)))

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class Garda:
    """The whole app (gateway, console and workers) over SQLite, served on a free port."""

    def __init__(self, directory: Path) -> None:
        url = f"sqlite:///{directory / 'garda.db'}"
        self.db = Database(url)
        self.db.upgrade()
        self.channel = SendingChannel()
        settings = Settings(database_url=url, worker_concurrency=2)
        self.runtime = Runtime(settings, self.db, InProcessQueue(), {"test": self.channel},
                               brain=BrainRunner(lambda: Brain(KeywordParser(),
                                                               Content.load())))
        self.app = create_app(settings, self.runtime)
        self.tickets = Tickets(self.db.engine)
        self.chats = 0

    def escalate(self, text: str = CITIZEN_TEXT) -> Ticket:
        """A citizen's message that the bot answered with a holding reply and escalated."""
        self.chats += 1
        chat = f"citizen-{self.chats}"
        stored = self.db.store_inbound(Inbound("test", f"m{self.chats}", chat, TEXT, text))
        message = self.db.claim_next(stored.conversation_id)
        assert message is not None
        decision = Decision(text=text, route="escalate", intent=None, confidence=0.9,
                            category="human_request", hoax_id=None, reply=HOLDING)
        self.db.save_decision(message, decision,
                              [Outgoing("sendMessage", {"chat_id": chat, "text": HOLDING})],
                              ticket=TicketSpec("human_request", 3, dt.timedelta(minutes=60)))
        ticket = self.tickets.active(stored.conversation_id)
        assert ticket is not None
        self.runtime.notifier.publish(ticket_event(ticket.id, "opened"))  # as the worker does
        return ticket

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        """uvicorn in a background thread, with the app's lifespan (so the workers run)."""
        port = free_port()
        server = LiveServer(uvicorn.Config(
            self.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
            access_log=False, ws="none"), self.runtime.notifier.end_streams)
        thread = threading.Thread(target=server.run, name="garda-uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + WAIT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app did not start")
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.handle_exit(signal.SIGTERM, None)  # as `garda run` stops: streams end
            thread.join(timeout=10)


def _unavailable(reason: str) -> None:
    """Skip, or fail when GARDA_REQUIRE_SERVERS=1 (as conftest does for the servers)."""
    if os.environ.get("GARDA_REQUIRE_SERVERS") == "1":
        pytest.fail(f"GARDA_REQUIRE_SERVERS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium as Debian packages it; never reaches beyond the loopback."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            _unavailable(f"{path} is not installed (Debian: apt-get install chromium "
                         "chromium-driver; scripts/setup.sh does it as root)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -c constraints.txt -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,1024",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER),
                      log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@contextlib.contextmanager
def evidence_on_failure(driver: Any, directory: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            driver.save_screenshot(str(directory / "console-failure.png"))
            (directory / "console-failure.html").write_text(driver.page_source)
            print(f"browser at {driver.current_url}; screenshot and page in {directory}",
                  file=sys.stderr)
        raise


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = predicate()
        except Exception:  # an element replaced by a refresh or a navigation: look again
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_an_agent_claims_answers_and_hands_back_a_ticket_in_a_real_browser(
        tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    garda = Garda(tmp_path)
    Users(garda.db.engine).add(AGENT, PASSWORD, "agent")
    ticket = garda.escalate()
    driver = browser

    def css(selector: str) -> Any:
        return driver.find_element(By.CSS_SELECTOR, selector)

    def texts(selector: str) -> list[str]:
        return [e.text for e in driver.find_elements(By.CSS_SELECTOR, selector)]

    def notice() -> str:
        return " ".join(texts("p.notice"))

    with garda.serving() as base, evidence_on_failure(driver, tmp_path):
        # Logging in: the queue sends a stranger to the login page.
        driver.get(f"{base}/admin/")
        assert driver.current_url == f"{base}/admin/login"
        css("input[name=name]").send_keys(AGENT)
        css("input[name=password]").send_keys(PASSWORD)
        css("main form button[type=submit]").click()
        wait_until(lambda: driver.current_url == f"{base}/admin/", "the queue after login")
        assert f"{AGENT} (agent)" in css("header").text
        cookies = {c["name"]: c for c in driver.get_cookies()}
        session = cookies["garda_admin"]  # Secure, and kept over http: 127.0.0.1 is secure
        assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Strict"
        assert session["path"] == "/admin"
        assert "garda_admin_login" not in cookies  # the pre-session token is gone

        # The queue lists the ticket, open and unassigned.
        row = f'#rows tr[data-ticket="{ticket.id}"]'
        assert css(row).get_attribute("data-status") == "open"
        cells = [td.text for td in css(row).find_elements(By.TAG_NAME, "td")]
        assert cells[1] == "human_request" and cells[5] == "terbuka" and cells[6] == "-"
        css(f"{row} a").click()
        wait_until(lambda: driver.current_url == f"{base}/admin/tickets/{ticket.id}",
                   "the ticket page")
        assert css("h1").text == f"Tiket {ticket.id}: human_request"
        conversation = texts("#conversation li")
        assert CITIZEN_TEXT in conversation[0] and HOLDING in conversation[1]

        # Claim: the page names the holder, and the reply box appears.
        css(f'form[action="/admin/tickets/{ticket.id}/claim"] button').click()
        wait_until(lambda: "Tiket diambil" in notice(), "the claim's notice")
        assert css("#ticket-state").get_attribute("data-status") == "claimed"
        assert f"oleh {AGENT}" in css("#ticket-state").text

        # The quick replies fill the box (inline script, allowed by the CSP nonce)...
        quick = Select(css("#quick"))
        quick.select_by_index(1)
        chosen = quick.first_selected_option.get_attribute("data-text")
        assert chosen and css("#reply-text").get_property("value") == chosen
        # ...and the agent writes their own answer instead.
        css("#reply-text").clear()
        css("#reply-text").send_keys(REPLY)
        css(f'form[action="/admin/tickets/{ticket.id}/reply"] button[type=submit]').click()
        wait_until(lambda: "Balasan masuk antrian kirim" in notice(), "the reply's notice")
        admin_lines = texts("#conversation li.admin")
        assert len(admin_lines) == 1 and REPLY in admin_lines[0]
        assert admin_lines[0].startswith(f"Admin {AGENT}")

        # A worker sends it through the conversation's channel; the page then says so.
        wait_until(lambda: (f"citizen-{garda.chats}", REPLY) in garda.channel.sent,
                   "the worker to send the reply")
        driver.refresh()
        assert "sent" in texts("#conversation li.admin")[0]

        # Hand back with a note: the ticket is closed and leaves the queue.
        hand_back = f'form[action="/admin/tickets/{ticket.id}/hand_back"]'
        css(f"{hand_back} input[name=note]").send_keys(NOTE)
        css(f"{hand_back} button[type=submit]").click()
        wait_until(lambda: "dikembalikan ke bot" in notice(), "the hand back's notice")
        assert css("#ticket-state").get_attribute("data-status") == "handed_back"
        assert not driver.find_elements(By.CSS_SELECTOR, "#reply-text")  # no more replies
        assert NOTE in css("#events").text
        driver.find_element(By.LINK_TEXT, "Antrian").click()
        wait_until(lambda: driver.current_url == f"{base}/admin/", "the queue")
        assert not driver.find_elements(By.CSS_SELECTOR, row)
        assert "Tidak ada tiket aktif." in css("#rows").text

        # The open queue refreshes itself (fetch with the cookie, under the CSP): a new
        # escalation shows up without reloading the page.
        second = garda.escalate("tolong sambungkan ke petugas")
        wait_until(lambda: driver.find_elements(
            By.CSS_SELECTOR, f'#rows tr[data-ticket="{second.id}"]'),
            "the queue to refresh itself", timeout=3 * WAIT)

    # What the database holds.
    closed = garda.tickets.get(ticket.id)
    assert closed.status == "handed_back" and closed.assignee == AGENT
    with garda.db.engine.connect() as conn:
        replies = conn.execute(select(models.outbox).where(
            models.outbox.c.author == AGENT)).all()
    assert len(replies) == 1
    assert replies[0].ticket_id == ticket.id and replies[0].status == "sent"
    assert json.loads(replies[0].payload)["text"] == REPLY
    events = [(e.actor, e.action, e.detail) for e in garda.tickets.events(ticket.id)]
    assert [(actor, action) for actor, action, _ in events] == [
        ("garda", "opened"), (AGENT, "claimed"), (AGENT, "replied"), (AGENT, "handed_back")]
    assert events[-1][2] == NOTE
    # The channel got the holding reply and the agent's, each once, in that order.
    assert [text for chat, text in garda.channel.sent if chat == "citizen-1"] == [HOLDING,
                                                                                   REPLY]
