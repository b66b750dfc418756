"""The admins' Telegram group: urgent tickets posted there; claimed, closed and answered there.

End to end in one process: the web app (webhook mode) and its worker over a Runtime on
SQLite, the real Telegram channel against the Bot API stub over HTTP, and stand-ins for
the model and the safety classifier (keywords mean a category).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import html
import logging
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import select
from starlette.datastructures import Secret
from stubs import serve
from stubs.telegram import MEDIA, TelegramStub, callback_update, text_update
from test_runtime import KeywordParser, count, until

from bot import config
from bot.admin.telegram_group import (
    STALE_RESERVATION,
    AdminGroup,
    excerpt,
    posted_ticket,
    reserve_post,
)
from bot.brain.decision import Decision
from bot.brain.pipeline import Brain
from bot.channels.base import TEXT, Inbound, Outgoing
from bot.channels.telegram import TelegramChannel
from bot.config import Settings
from bot.content import Content
from bot.gateway.app import Gateway, create_app
from bot.gateway.runtime import BrainRunner, Runtime
from bot.safety.categories import categories
from bot.safety.triage import NONE, Verdict
from bot.store import models
from bot.store.db import Database
from bot.store.queue import InProcessQueue
from bot.store.ratelimit import InProcessRateLimiter
from bot.store.tickets import Ticket, Tickets, TicketSpec

TOKEN = "7000001:AAH-test_token_Garda_Sukamaju_0123456789"
SECRET = "webhook-secret-admin-group-7c1e"
ADMIN_CHAT = -1009876543210
CITIZEN = 5551234
ANI, BUDI, EVE = 11, 12, 13  # a member, an administrator, someone who left the group
NIK = "3201234567890123"
PHONE = "0812-3456-7890"


class KeywordSafety:
    """Stands in for the safety classifier: a few words mean a category."""

    WORDS: ClassVar[dict[str, str]] = {
        "kebakaran": "emergency",      # priority 1
        "pungli": "corruption",        # priority 2
        "petugas": "human_request",    # priority 3
    }

    def classify(self, text: Any, normalized: str | None = None) -> Verdict:
        for word, category in self.WORDS.items():
            if word in str(text).lower():
                return Verdict(category, 0.99, category)
        return Verdict(None, 0.9, NONE)


@dataclass
class Deployment:
    stub: TelegramStub
    runtime: Runtime
    gateway: Gateway
    client: httpx.AsyncClient
    tickets: Tickets
    next_update: int = 1000

    @property
    def group(self) -> AdminGroup:
        assert self.gateway.admin_group is not None
        return self.gateway.admin_group

    async def webhook(self, update: dict[str, Any]) -> httpx.Response:
        response = await self.client.post("/webhooks/telegram", json=update, headers={
            "X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert response.status_code == 200, response.text
        return response

    def update_id(self) -> int:
        self.next_update += 1
        return self.next_update

    async def citizen_says(self, text: str) -> None:
        await self.webhook(text_update(self.update_id(), CITIZEN, text))

    async def press(self, user: int, data: str, message_id: int, *,
                    chat: int = ADMIN_CHAT, username: str | None = None) -> None:
        await self.webhook(callback_update(
            self.update_id(), chat, data, user_id=user, username=username,
            chat_type="supergroup" if chat < 0 else "private", message_id=message_id))

    async def reply(self, user: int, text: str, to: int, *, username: str | None = None,
                    message_id: int | None = None) -> None:
        await self.webhook(text_update(self.update_id(), ADMIN_CHAT, text, user_id=user,
                                       username=username, chat_type="supergroup",
                                       reply_to_message_id=to, message_id=message_id))

    def to_admins(self) -> list[dict[str, Any]]:
        """Messages the bot sent to the admin chat (accepted by Telegram)."""
        return [p for p in self.stub.sent() if str(p.get("chat_id")) == str(ADMIN_CHAT)]

    def posts(self) -> list[dict[str, Any]]:
        return [p for p in self.to_admins() if "reply_markup" in p]

    def notes(self) -> list[str]:
        """The group's short answers (not posts)."""
        return [html.unescape(p["text"]) for p in self.to_admins() if "reply_markup" not in p]

    def to_citizen(self) -> list[str]:
        return [html.unescape(p["text"]) for p in self.stub.sent()
                if str(p.get("chat_id")) == str(CITIZEN)]

    def posted(self, ticket_id: int = 1) -> list[int]:
        """Telegram message ids of the ticket's posts in the admin chat (ticket_posts)."""
        return [r.message_id for r in self.post_rows(ticket_id) if r.message_id is not None]

    def post_rows(self, ticket_id: int | None = None) -> list[Any]:
        """ticket_posts rows (reservations included), oldest first."""
        query = select(models.ticket_posts).order_by(models.ticket_posts.c.id)
        if ticket_id is not None:
            query = query.where(models.ticket_posts.c.ticket_id == ticket_id)
        with self.runtime.db.engine.connect() as conn:
            return list(conn.execute(query).all())

    def open_ticket(self, chat: str, category: str = "emergency") -> Ticket:
        """A citizen's escalated message with its ticket, stored without the worker (so
        that nothing posts it until a test says so)."""
        db = self.runtime.db
        stored = db.store_inbound(Inbound("telegram", f"{chat}:1", chat, TEXT, "tolong"))
        message = db.claim_next(stored.conversation_id)
        assert message is not None
        found = categories()[category]
        decision = Decision(text="tolong", route="escalate", intent=None, confidence=0.9,
                            category=category, hoax_id=None, reply="tunggu")
        db.save_decision(message, decision, [Outgoing("sendMessage", {"text": "tunggu"})],
                         ticket=TicketSpec(category, found.priority, found.claim_within))
        ticket = self.tickets.active(stored.conversation_id)
        assert ticket is not None
        return ticket

    def answers(self) -> list[str]:
        return [str(c.params.get("text")) for c in self.stub.calls_to("answerCallbackQuery")]

    def post_now(self, message_id: int) -> dict[str, Any]:
        message = self.stub.message(ADMIN_CHAT, message_id)
        assert message is not None
        return message

    async def settled(self) -> None:
        """Every message answered, every reply sent, every post made."""
        await until(lambda: self.runtime.db.backlog() == 0)
        await until(lambda: not self.runtime.db.recover(queued_after=0.0))
        await self.group.idle()


def garda_log(caplog: pytest.LogCaptureFixture) -> str:
    """What Garda's own loggers wrote, arguments filled in (before any redaction)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot."))


def buttons(params: dict[str, Any]) -> list[tuple[str, str]]:
    markup = params.get("reply_markup") or {}
    return [(b["text"], b["callback_data"]) for row in markup.get("inline_keyboard", [])
            for b in row]


def settings_for(tmp_path: Path, api_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        database_url=f"sqlite:///{tmp_path / 'garda.db'}",
        telegram_token=Secret(TOKEN), telegram_api_url=api_url,
        telegram_webhook_secret=Secret(SECRET), public_url="https://garda.example",
        telegram_admin_chat_id=ADMIN_CHAT,
        # Faster than Telegram's limits, so that a scenario takes seconds.
        telegram_chat_rate=50.0, telegram_group_per_minute=600,
    )
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def deployed(settings: Settings, stub: TelegramStub) -> AsyncIterator[Deployment]:
    db = Database(settings.database_url)
    db.upgrade()
    channel = TelegramChannel(settings, InProcessRateLimiter())
    brain = BrainRunner(lambda: Brain(KeywordParser(), Content.load(),
                                      safety=KeywordSafety()))  # type: ignore[arg-type]
    runtime = Runtime(settings, db, InProcessQueue(), {"telegram": channel}, brain=brain)
    app = create_app(settings, runtime)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://garda") as client:
        yield Deployment(stub, runtime, app.state.gateway, client, Tickets(db.engine))


def scenario(tmp_path: Path, play: Callable[[Deployment], Awaitable[None]],
             **overrides: Any) -> TelegramStub:
    stub = TelegramStub(TOKEN)
    stub.set_member(ADMIN_CHAT, ANI, "member", "ani")
    stub.set_member(ADMIN_CHAT, BUDI, "administrator", "budi")
    stub.set_member(ADMIN_CHAT, EVE, "left", "eve")
    with serve(stub.app) as url:
        settings = settings_for(tmp_path, url, **overrides)

        async def main() -> None:
            async with deployed(settings, stub) as deployment:
                await play(deployment)

        asyncio.run(main())
    return stub


async def emergency_posted(d: Deployment, text: str = "TOLONG kebakaran di gang 3") -> int:
    """A citizen's emergency, answered and posted: the post's message id."""
    await d.citizen_says(text)
    await until(lambda: len(d.posted()) == 1)
    return d.posted()[0]


# --- posting ----------------------------------------------------------------------------


def test_a_high_priority_escalation_is_posted_once_masked_with_both_buttons(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    emergency = (f"TOLONG ada kebakaran di rumah saya! NIK saya {NIK} hp {PHONE} "
                 + "asap tebal sekali " * 30)

    async def play(d: Deployment) -> None:
        await d.citizen_says(emergency)
        await until(lambda: len(d.posts()) == 1)
        await d.citizen_says("kebakaran makin besar, tolong")  # same ticket, same priority
        await until(lambda: len(d.to_citizen()) == 2)
        await d.settled()
        assert len(d.posts()) == 1
        post = d.posts()[0]
        text = post["text"]
        assert NIK not in text and PHONE not in text and "34567890" not in text
        assert "[nik/kk]" in text and "[telepon]" in text
        for part in ("Prioritas 1", "emergency", "Tiket #1", "Telegram", "WIB"):
            assert part in text
        quoted = html.unescape(re.findall(r"<blockquote>(.*?)</blockquote>", text, re.S)[0])
        assert len(quoted) <= 300 and quoted.endswith("\u2026")
        assert buttons(post) == [("Klaim", "ticket:claim:1"), ("Selesai", "ticket:resolve:1")]
        assert len(d.posted()) == 1
        assert "Tiket #1" in d.post_now(d.posted()[0])["text"]
        assert [(e.actor, e.detail) for e in d.tickets.events(1) if e.action == "posted"] == [
            ("garda", str(d.posted()[0]))]
        assert [(r.chat_id, r.kind, r.priority) for r in d.post_rows(1)] == [
            (str(ADMIN_CHAT), "alert", 1)]
        # The citizen got the emergency's holding reply all the same.
        assert d.to_citizen()[0] == Content.load().render("utter_escalate_emergency")

    scenario(tmp_path, play)
    logged = garda_log(caplog)
    assert "ticket 1 posted" in logged
    for secret in (NIK, PHONE, "asap tebal", "kebakaran", TOKEN, "ani"):
        assert secret not in logged


def test_a_low_priority_escalation_is_not_posted(tmp_path: Path) -> None:
    async def play(d: Deployment) -> None:
        await d.citizen_says("saya mau bicara dengan petugas")
        await until(lambda: len(d.to_citizen()) == 1)
        await d.settled()
        ticket = d.tickets.active(1)
        assert ticket is not None and ticket.priority == 3
        assert d.to_admins() == [] and d.posted() == []

    scenario(tmp_path, play)


def test_the_priority_limit_is_a_setting(tmp_path: Path) -> None:
    async def play(d: Deployment) -> None:
        await d.citizen_says("ada pungli di kelurahan")  # corruption: priority 2
        await until(lambda: len(d.to_citizen()) == 1)
        await d.settled()
        assert d.posted() == []

    scenario(tmp_path, play, telegram_admin_max_priority=1)


def test_a_posted_ticket_raised_to_an_emergency_alerts_again_in_reply_to_its_post(
        tmp_path: Path) -> None:
    async def play(d: Deployment) -> None:
        await d.citizen_says("lapor ada pungli di kantor kelurahan")
        await until(lambda: len(d.posted()) == 1)
        first = d.posted()[0]
        assert "Prioritas 2" in d.posts()[0]["text"]
        await d.citizen_says("TOLONG sekarang ada kebakaran")  # paused, but an emergency
        await until(lambda: len(d.posted()) == 2)
        alert = d.posts()[1]
        assert alert["reply_parameters"]["message_id"] == first
        assert [(r.kind, r.priority) for r in d.post_rows(1)] == [("alert", 2), ("raised", 1)]
        assert "Prioritas naik 2 \u2192 1" in html.unescape(alert["text"])
        assert "emergency" in alert["text"]
        await d.citizen_says("kebakaran belum padam")  # no more urgent than the last alert
        await until(lambda: len(d.to_citizen()) == 3)
        await d.settled()
        assert len(d.posts()) == 2

    scenario(tmp_path, play)


def test_a_failing_admin_chat_never_holds_up_the_citizen_and_flood_control_is_waited_out(
        tmp_path: Path) -> None:
    async def play(d: Deployment) -> None:
        d.stub.block(ADMIN_CHAT)
        await d.citizen_says("TOLONG kebakaran")
        await until(lambda: len(d.to_citizen()) == 1)
        await d.settled()
        assert d.posted() == []
        assert d.post_rows() == []  # the failed send left no reservation behind
        assert [c.status for c in d.stub.calls_to("sendMessage")
                if str(c.params.get("chat_id")) == str(ADMIN_CHAT)] == [403]
        # Telegram answers again; the next alert meets flood control once and waits it out.
        d.stub.unblock(ADMIN_CHAT)
        d.stub.fail_next("sendMessage", 429, retry_after=1)
        ticket = d.tickets.get(1)
        await d.group.on_escalation(ticket, "emergency")
        await d.group.idle()
        assert len(d.posted()) == 1
        assert [c.status for c in d.stub.calls_to("sendMessage")
                if str(c.params.get("chat_id")) == str(ADMIN_CHAT)] == [403, 429, 200]
        # A refusal that is not worth retrying also gives the reservation up.
        other = d.open_ticket("c-refused")
        d.stub.fail_next("sendMessage", 400, description="Bad Request: chat not found")
        await d.group.on_escalation(other, "emergency")
        await d.group.idle()
        assert d.post_rows(other.id) == [] and d.posted(other.id) == []

    scenario(tmp_path, play)


def test_two_admin_groups_posting_the_same_ticket_at_once_post_it_once(
        tmp_path: Path) -> None:
    """Two processes (their own engine, channel and group) on one database: each ticket
    is posted once, and restarting the group (a new instance) does not post it again."""

    async def play(d: Deployment) -> None:
        settings = d.runtime.settings
        db = Database(settings.database_url)
        channel = TelegramChannel(settings, InProcessRateLimiter())
        await channel.start()
        other = AdminGroup(settings, Runtime(settings, db, InProcessQueue(),
                                             {"telegram": channel}, role="gateway"), channel)
        try:
            tickets = [d.open_ticket(f"c-twice-{n}") for n in range(4)]
            for ticket in tickets:
                d.stub.delay_next("sendMessage", 0.2)  # both sends would overlap
                d.stub.delay_next("sendMessage", 0.2)
                await asyncio.gather(d.group.on_escalation(ticket, "emergency"),
                                     other.on_escalation(ticket, "emergency"))
                await asyncio.gather(d.group.idle(), other.idle())
            restarted = AdminGroup(settings, d.runtime, d.group.channel)
            for ticket in tickets:
                await restarted.on_escalation(ticket, "emergency")
            await restarted.idle()
            for ticket in tickets:
                posts = [p for p in d.posts() if f"Tiket #{ticket.id} " in p["text"]]
                assert len(posts) == 1
                rows = d.post_rows(ticket.id)
                assert [(r.kind, r.message_id is not None) for r in rows] == [("alert", True)]
                assert [e.action for e in d.tickets.events(ticket.id)].count("posted") == 1
            assert len(d.posts()) == len(tickets)
        finally:
            await channel.stop()
            db.dispose()

    scenario(tmp_path, play)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql",
                                                            marks=pytest.mark.servers)])
def test_of_many_processes_reserving_one_post_exactly_one_gets_it(
        tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    url = (f"sqlite:///{tmp_path / 'garda.db'}" if backend == "sqlite"
           else request.getfixturevalue("postgres_url"))
    Database(url).upgrade()
    stub = TelegramStub(TOKEN)
    with serve(stub.app) as api:
        async def setup() -> Ticket:
            async with deployed(settings_for(tmp_path, api, database_url=url), stub) as d:
                return d.open_ticket("c-reserve")

        ticket = asyncio.run(setup())
    engines = [Database(url) for _ in range(6)]  # one engine each, as separate processes
    start = threading.Barrier(len(engines))

    def reserve(db: Database) -> int | None:
        start.wait()
        return reserve_post(db.engine, ticket.id, str(ADMIN_CHAT), "alert", 1)

    with concurrent.futures.ThreadPoolExecutor(len(engines)) as pool:
        got = list(pool.map(reserve, engines))
    assert len([g for g in got if g is not None]) == 1
    # Another priority (a raised alert) and another chat are other posts.
    assert reserve_post(engines[0].engine, ticket.id, str(ADMIN_CHAT), "raised", 1) is not None
    assert reserve_post(engines[0].engine, ticket.id, "-100111", "alert", 1) is not None
    for db in engines:
        db.dispose()


def test_a_reservation_left_by_a_dead_process_is_taken_over_after_a_while(
        tmp_path: Path) -> None:
    async def play(d: Deployment) -> None:
        fresh, stale = d.open_ticket("c-fresh"), d.open_ticket("c-stale")
        now = models.utcnow()
        with d.runtime.db.engine.begin() as conn:
            for ticket, age in ((fresh, dt.timedelta(minutes=1)),
                                (stale, STALE_RESERVATION + dt.timedelta(minutes=1))):
                conn.execute(models.ticket_posts.insert().values(
                    ticket_id=ticket.id, chat_id=str(ADMIN_CHAT), message_id=None,
                    kind="alert", priority=ticket.priority, created_at=now - age))
        for ticket in (fresh, stale):
            await d.group.on_escalation(ticket, "emergency")
        await d.group.idle()
        assert d.posted(fresh.id) == []  # someone may be sending it right now
        assert len(d.posted(stale.id)) == 1 and len(d.posts()) == 1

    scenario(tmp_path, play)


# --- buttons ----------------------------------------------------------------------------


def test_a_members_claim_wins_and_the_others_are_told_who_holds_the_ticket(
        tmp_path: Path) -> None:
    async def play(d: Deployment) -> None:
        post = await emergency_posted(d)
        await d.press(ANI, "ticket:claim:1", post, username="ani")
        assert d.answers() == ["Tiket #1 diklaim oleh tg:ani"]
        ticket = d.tickets.get(1)
        assert (ticket.status, ticket.assignee) == ("claimed", "tg:ani")
        now = d.post_now(post)
        assert "dipegang tg:ani" in now["text"] and "menunggu klaim" not in now["text"]
        assert buttons(now) == [("Klaim", "ticket:claim:1"), ("Selesai", "ticket:resolve:1")]

        await d.press(BUDI, "ticket:claim:1", post, username="budi")
        assert d.answers()[-1] == "Tiket #1 sudah dipegang tg:ani"
        await d.press(BUDI, "ticket:resolve:1", post, username="budi")
        assert d.answers()[-1] == "Tiket #1 dipegang tg:ani; hanya dia yang bisa menutupnya"
        assert d.tickets.get(1).assignee == "tg:ani"

        await d.press(ANI, "ticket:resolve:1", post, username="ani")
        assert d.answers()[-1] == "Tiket #1 selesai"
        assert d.tickets.get(1).status == "resolved"
        now = d.post_now(post)
        assert "Status: selesai" in now["text"] and "reply_markup" not in now
        # Membership was asked once per person (then cached), and only for the group.
        asked = [(c.params["chat_id"], c.params["user_id"])
                 for c in d.stub.calls_to("getChatMember")]
        assert asked == [(ADMIN_CHAT, ANI), (ADMIN_CHAT, BUDI)]

    scenario(tmp_path, play)


def test_resolving_an_unclaimed_ticket_is_open_to_any_member_and_recorded_by_id(
        tmp_path: Path) -> None:
    async def play(d: Deployment) -> None:
        post = await emergency_posted(d)
        await d.press(BUDI, "ticket:resolve:1", post)  # no username: tg:<id>
        assert d.answers() == ["Tiket #1 selesai"]
        assert [(e.actor, e.action) for e in d.tickets.events(1)][-1] == (f"tg:{BUDI}",
                                                                         "resolved")
        await d.press(ANI, "ticket:claim:1", post, username="ani")
        assert d.answers()[-1] == "Tiket #1 sudah ditutup"
        assert d.tickets.get(1).assignee is None

    scenario(tmp_path, play)


def test_a_button_from_a_non_member_or_from_another_chat_changes_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    async def play(d: Deployment) -> None:
        post = await emergency_posted(d)
        await d.settled()
        inbound_before = count(d.runtime.db, models.inbound)
        events_before = d.tickets.events(1)
        await d.press(EVE, "ticket:claim:1", post, username="eve")           # left the group
        await d.press(ANI, "ticket:claim:1", post, chat=ANI, username="ani")  # her own chat
        await d.press(ANI, "ticket:resolve:1", post, chat=CITIZEN, username="ani")
        ticket = d.tickets.get(1)
        assert (ticket.status, ticket.assignee) == ("open", None)
        assert d.tickets.events(1) == events_before
        assert d.answers() == [] and d.stub.calls_to("editMessageText") == []
        assert [c.params["user_id"] for c in d.stub.calls_to("getChatMember")] == [EVE]
        await d.settled()
        assert count(d.runtime.db, models.inbound) == inbound_before  # not citizens' either

    scenario(tmp_path, play)
    logged = garda_log(caplog)
    assert "ignored a ticket button from someone who is not a member" in logged
    assert logged.count("ignored a ticket button from outside the admin chat") == 2
    assert str(EVE) not in logged and "eve" not in logged


# --- replies ----------------------------------------------------------------------------


def test_a_reply_to_the_post_reaches_the_citizen_and_one_to_a_closed_ticket_is_refused(
        tmp_path: Path) -> None:
    answer = "Petugas damkar sudah menuju lokasi, tetap di luar rumah & jauhi asap."

    async def play(d: Deployment) -> None:
        post = await emergency_posted(d)
        await d.reply(ANI, answer, post, username="ani", message_id=901)
        await until(lambda: answer in d.to_citizen())
        with d.runtime.db.engine.connect() as conn:
            rows = conn.execute(select(models.outbox).where(
                models.outbox.c.author.is_not(None))).all()
        assert [(r.author, r.ticket_id, r.inbound_id, r.status) for r in rows] == [
            ("tg:ani", 1, None, "sent")]
        assert d.notes() == ["Terkirim ke warga"]
        assert d.to_admins()[-1]["reply_parameters"]["message_id"] == 901
        assert ("tg:ani", "replied") in [(e.actor, e.action) for e in d.tickets.events(1)]

        # A reply without text (a photo) is refused; so is one from a non-member.
        photo = text_update(d.update_id(), ADMIN_CHAT, "x", user_id=ANI, username="ani",
                            chat_type="supergroup", reply_to_message_id=post)
        del photo["message"]["text"]
        photo["message"]["photo"] = MEDIA["photo"]
        await d.webhook(photo)
        assert d.notes()[-1].startswith("Balasan kosong tidak dikirim")
        await d.reply(EVE, "saya bukan admin", post, username="eve")
        assert len(d.notes()) == 2

        d.tickets.resolve(1, "ani")
        await d.reply(ANI, "satu lagi", post, username="ani")
        assert d.notes()[-1] == "Tiket #1 sudah ditutup; balasan tidak dikirim ke warga."
        await d.settled()
        assert d.to_citizen().count(answer) == 1
        assert "satu lagi" not in d.to_citizen() and "saya bukan admin" not in d.to_citizen()
        assert count(d.runtime.db, models.outbox) == 2  # the 112 reply and the admin's

    scenario(tmp_path, play)


def test_updates_from_the_admin_chat_never_become_citizen_messages(tmp_path: Path) -> None:
    async def play(d: Deployment) -> None:
        post = await emergency_posted(d)
        await d.settled()
        before = count(d.runtime.db, models.inbound)
        # Addressed to the bot: from any other group this would be a citizen's question.
        await d.webhook(text_update(d.update_id(), ADMIN_CHAT,
                                    "@GardaSukamajuBot cara bikin ktp?", user_id=ANI,
                                    chat_type="supergroup"))
        await d.webhook(text_update(d.update_id(), ADMIN_CHAT, "cara bikin ktp?",
                                    user_id=ANI, chat_type="supergroup", reply_to_bot=True))
        await d.press(ANI, "/faq/ktp", post)
        # Long polling takes the same path.
        taken = await d.gateway._take_polled(text_update(
            d.update_id(), ADMIN_CHAT, "@GardaSukamajuBot jam buka?", user_id=BUDI,
            chat_type="supergroup"))
        assert taken is True
        await d.settled()
        assert count(d.runtime.db, models.inbound) == before
        assert len(d.to_citizen()) == 1 and d.notes() == []
        # ... while a citizen's message in another group still is one.
        await d.webhook(text_update(d.update_id(), -100555, "@GardaSukamajuBot cara bikin ktp?",
                                    chat_type="supergroup"))
        assert count(d.runtime.db, models.inbound) == before + 1

    scenario(tmp_path, play)


def test_a_reply_is_matched_to_a_post_by_chat_and_message_id(tmp_path: Path) -> None:
    """Message ids count per chat: a post the bot made in another chat (an admin chat used
    before, say) with the same id as a message here is not that message."""

    async def play(d: Deployment) -> None:
        post = await emergency_posted(d)
        await d.settled()
        elsewhere = post + 50
        with d.runtime.db.engine.begin() as conn:
            conn.execute(models.ticket_posts.insert().values(
                ticket_id=1, chat_id="-100111", message_id=elsewhere, kind="alert",
                priority=1, created_at=models.utcnow()))
        engine = d.runtime.db.engine
        assert posted_ticket(engine, str(ADMIN_CHAT), post) == 1
        assert posted_ticket(engine, "-100111", post) is None
        assert posted_ticket(engine, str(ADMIN_CHAT), elsewhere) is None
        before = count(d.runtime.db, models.outbox)
        # In the admin chat, message `elsewhere` is an ordinary one: a reply to it is chat.
        await d.reply(ANI, "ini obrolan admin, bukan untuk warga", elsewhere, username="ani")
        await d.settled()
        assert count(d.runtime.db, models.outbox) == before
        assert d.notes() == [] and len(d.to_citizen()) == 1
        await d.reply(ANI, "Petugas segera datang.", post, username="ani")
        await until(lambda: "Petugas segera datang." in d.to_citizen())

    scenario(tmp_path, play)


def test_the_group_announces_its_ticket_changes_to_the_console(tmp_path: Path) -> None:
    async def play(d: Deployment) -> None:
        subscription = d.runtime.notifier.subscribe()
        post = await emergency_posted(d)
        await d.press(ANI, "ticket:claim:1", post, username="ani")
        await d.reply(ANI, "Kami segera ke sana.", post, username="ani")
        await d.press(ANI, "ticket:resolve:1", post, username="ani")
        seen: list[dict[str, Any]] = []
        while len(seen) < 4:
            event = await subscription.next(5.0)
            assert event is not None, seen
            seen.append(event)
        subscription.close()
        assert seen == [{"ticket": 1, "action": action}
                        for action in ("opened", "claimed", "replied", "resolved")]

    scenario(tmp_path, play)


# --- pieces -----------------------------------------------------------------------------


def test_settings_read_the_admin_chat_and_the_priority_limit() -> None:
    settings = config.load({"GARDA_TELEGRAM_ADMIN_CHAT_ID": "-1009876543210",
                            "GARDA_TELEGRAM_ADMIN_MAX_PRIORITY": "1",
                            "GARDA_DATABASE_URL": "sqlite://"})
    assert settings.telegram_admin_chat_id == ADMIN_CHAT
    assert settings.telegram_admin_max_priority == 1
    defaults = config.load({"GARDA_DATABASE_URL": "sqlite://"})
    assert (defaults.telegram_admin_chat_id, defaults.telegram_admin_max_priority) == (None, 2)
    with pytest.raises(config.ConfigError, match="GARDA_TELEGRAM_ADMIN_CHAT_ID"):
        config.load({"GARDA_TELEGRAM_ADMIN_CHAT_ID": "admins", "GARDA_DATABASE_URL": "sqlite://"})


def test_no_admin_group_without_telegram_or_without_a_chat_id(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'garda.db'}"
    with_telegram = Settings(database_url=db_url, telegram_token=Secret(TOKEN))
    channel = TelegramChannel(with_telegram, InProcessRateLimiter())
    db = Database(db_url)
    db.upgrade()
    runtime = Runtime(with_telegram, db, InProcessQueue(), {"telegram": channel}, role="gateway")
    assert AdminGroup.for_runtime(with_telegram, runtime) is None
    chat_only = Settings(database_url=db_url, telegram_admin_chat_id=ADMIN_CHAT)
    bare = Runtime(chat_only, db, InProcessQueue(), {}, role="gateway")
    assert AdminGroup.for_runtime(chat_only, bare) is None
    configured = Settings(database_url=db_url, telegram_token=Secret(TOKEN),
                          telegram_admin_chat_id=ADMIN_CHAT)
    assert AdminGroup.for_runtime(configured, runtime) is not None


def test_the_excerpt_masks_before_it_cuts() -> None:
    text = "x" * 290 + f" {NIK}"
    shown = excerpt(text)
    assert "3201" not in shown and len(shown) <= 300
    assert excerpt(f"hubungi {PHONE}") == "hubungi [telepon]"
