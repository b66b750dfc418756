"""The Telegram channel: update parsing, rendering, and sending/polling over real HTTP
against the Bot API stub (tests/stubs/telegram.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.datastructures import Secret
from stubs import serve
from stubs.telegram import (
    BOT_USERNAME,
    TelegramStub,
    callback_update,
    html_visible_text,
    media_update,
    text_update,
)

from bot.brain.decision import Button
from bot.channels.base import (
    BUTTON,
    MEDIA,
    TEXT,
    Inbound,
    MalformedUpdate,
    Outgoing,
    SendContext,
    SendError,
)
from bot.channels.telegram import TelegramChannel, parse_update, split_text
from bot.config import Settings
from bot.store.ratelimit import InProcessRateLimiter

TOKEN = "7000001:AAH-test_token_Garda_Sukamaju_0123456789"
USER = 5551234
GROUP = -1001234567890


def parse(update: dict[str, Any]) -> Inbound | None:
    return parse_update(update, None, BOT_USERNAME)


# --- parsing ----------------------------------------------------------------------------


def test_private_text_message_becomes_text_inbound() -> None:
    update = text_update(1001, USER, "Syarat bikin KTP apa saja?", date=1_700_000_000)
    inbound = parse(update)
    assert inbound == Inbound(
        channel="telegram", platform_id="1001", chat_id=str(USER), kind=TEXT,
        text="Syarat bikin KTP apa saja?",
        sent_at=dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.timezone.utc),
        reply_to=None, is_group=False,
    )
    assert inbound.sent_at is not None and inbound.sent_at.utcoffset() == dt.timedelta(0)


def test_command_keeps_its_text_including_the_bot_suffix() -> None:
    command = parse(text_update(1, USER, "/start"))
    assert command is not None and command.text == "/start"
    inbound = parse(text_update(2, GROUP, f"/start@{BOT_USERNAME}", chat_type="supergroup"))
    assert inbound is not None
    assert inbound.text == f"/start@{BOT_USERNAME}"
    assert inbound.kind == TEXT


def test_callback_query_becomes_button_with_its_payload_and_query_id() -> None:
    inbound = parse(callback_update(7, USER, "/faq/ktp", query_id="q-77"))
    assert inbound is not None
    assert (inbound.kind, inbound.text, inbound.callback_id) == (BUTTON, "/faq/ktp", "q-77")
    assert inbound.chat_id == str(USER)
    assert inbound.platform_id == "7"


def test_callback_query_without_its_message_is_malformed() -> None:
    with pytest.raises(MalformedUpdate):
        parse(callback_update(8, USER, "/faq/ktp", with_message=False))


@pytest.mark.parametrize(
    "kind", ["photo", "voice", "sticker", "location", "document", "venue", "animation",
             "audio", "video", "video_note", "contact", "dice"],
)
def test_media_message_becomes_media_inbound_naming_its_type(kind: str) -> None:
    inbound = parse(media_update(3, USER, kind, caption="ini KTP saya"))
    assert inbound is not None
    assert (inbound.kind, inbound.detail, inbound.text) == (MEDIA, kind, "")


def test_group_message_mentioning_the_bot_is_taken_without_the_mention() -> None:
    update = text_update(4, GROUP, f"@{BOT_USERNAME} jam buka kantor desa?",
                         chat_type="supergroup", message_id=321)
    inbound = parse(update)
    assert inbound is not None
    assert inbound.text == "jam buka kantor desa?"
    assert inbound.is_group
    assert inbound.reply_to == "321"
    assert inbound.chat_id == str(GROUP)


def test_group_mention_in_text_without_entities_still_counts() -> None:
    update = text_update(5, GROUP, f"Halo @{BOT_USERNAME.lower()}, jam buka?",
                         chat_type="group", entities=[])
    inbound = parse(update)
    assert inbound is not None and inbound.text == "Halo jam buka?"


def test_group_message_not_mentioning_the_bot_is_ignored() -> None:
    assert parse(text_update(6, GROUP, "jam buka kantor desa?", chat_type="supergroup")) is None
    # Another bot's mention or a look-alike name is not Garda's.
    assert parse(text_update(7, GROUP, "@GardaSukamajuBotKW halo", chat_type="group")) is None
    assert parse(media_update(8, GROUP, "photo", chat_type="group")) is None


def test_group_media_whose_caption_mentions_the_bot_is_taken_as_media() -> None:
    update = media_update(19, GROUP, "photo", chat_type="supergroup",
                          caption=f"@{BOT_USERNAME} ini surat saya", message_id=77)
    inbound = parse(update)
    assert inbound is not None
    assert (inbound.kind, inbound.detail, inbound.text, inbound.reply_to) == (
        MEDIA, "photo", "", "77")


def test_group_reply_to_the_bot_is_taken() -> None:
    update = text_update(9, GROUP, "kalau hari Sabtu?", chat_type="supergroup",
                         reply_to_bot=True, message_id=400)
    inbound = parse(update)
    assert inbound is not None
    assert (inbound.text, inbound.reply_to, inbound.is_group) == ("kalau hari Sabtu?", "400", True)


def test_group_reply_to_another_user_is_ignored() -> None:
    update = text_update(10, GROUP, "setuju", chat_type="supergroup")
    update["message"]["reply_to_message"] = {
        "message_id": 1, "from": {"id": 99, "is_bot": False, "first_name": "Budi"},
        "chat": update["message"]["chat"], "date": 1_700_000_000, "text": "besok rapat",
    }
    assert parse(update) is None


def test_edited_messages_bots_and_channel_posts_are_ignored() -> None:
    edited = text_update(11, USER, "ralat")
    edited["edited_message"] = {**edited.pop("message"), "edit_date": int(time.time())}
    assert parse(edited) is None
    from_bot = text_update(12, USER, "halo")
    from_bot["message"]["from"]["is_bot"] = True
    assert parse(from_bot) is None
    post = {"update_id": 13, "channel_post": {
        "message_id": 1, "date": 1_700_000_000, "text": "pengumuman",
        "chat": {"id": -100777, "type": "channel", "title": "Info Desa"}}}
    assert parse(post) is None


@pytest.mark.parametrize(
    "data",
    [
        {"update_id": 14, "poll": {"id": "1", "question": "?", "options": [],
                                   "total_voter_count": 0, "is_closed": False,
                                   "is_anonymous": True, "type": "regular",
                                   "allows_multiple_answers": False}},
        {"update_id": 15, "something_new": {}},
    ],
)
def test_unknown_update_type_is_unsupported(data: dict[str, Any]) -> None:
    with pytest.raises(MalformedUpdate, match="unsupported update type"):
        parse(data)


@pytest.mark.parametrize(
    "data",
    [
        None, [], "update", {}, {"update_id": "16", "message": {}}, {"update_id": True},
        {"update_id": 17, "message": "hello"},
        {"update_id": 18, "message": {"message_id": 1, "chat": {"id": 5, "type": "private"}}},
    ],
)
def test_malformed_update_is_rejected(data: Any) -> None:
    with pytest.raises(MalformedUpdate):
        parse(data)


# --- split_text -------------------------------------------------------------------------


def test_split_text_keeps_short_text_whole_and_gives_nothing_for_blank() -> None:
    assert split_text("Halo") == ["Halo"]
    assert split_text("x" * 4096) == ["x" * 4096]
    assert split_text("  \n\n ") == []


def test_split_text_prefers_paragraphs_then_lines_then_spaces() -> None:
    paragraphs = "aaaa aaaa\n\nbbbb bbbb\n\ncccc"
    assert split_text(paragraphs, limit=20) == ["aaaa aaaa\n\nbbbb bbbb", "cccc"]
    lines = "aaaa aaaa\nbbbb bbbb\ncccc"
    assert split_text(lines, limit=12) == ["aaaa aaaa", "bbbb bbbb", "cccc"]
    words = "satu dua tiga empat lima"
    assert split_text(words, limit=10) == ["satu dua", "tiga empat", "lima"]


def test_split_text_cuts_a_word_longer_than_the_limit() -> None:
    parts = split_text("pendek " + "x" * 25, limit=10)
    assert parts == ["pendek", "x" * 10, "x" * 10, "x" * 5]


def test_split_text_parts_are_within_the_limit_and_lose_no_words() -> None:
    text = "\n\n".join(
        "\n".join(" ".join(f"kata{p}{ln}{w}" for w in range(30)) for ln in range(7))
        for p in range(40)
    )
    parts = split_text(text)
    assert len(parts) > 1
    assert all(0 < len(part) <= 4096 for part in parts)
    assert " ".join(parts).split() == text.split()


# --- render -----------------------------------------------------------------------------


def channel(**overrides: Any) -> TelegramChannel:
    settings = Settings(telegram_token=Secret(TOKEN), **overrides)
    return TelegramChannel(settings, InProcessRateLimiter())


def private_inbound(**overrides: Any) -> Inbound:
    fields: dict[str, Any] = {"channel": "telegram", "platform_id": "1", "chat_id": str(USER),
                              "kind": TEXT, "text": "halo"}
    fields.update(overrides)
    return Inbound(**fields)


def test_render_escapes_html_and_sets_the_parse_mode() -> None:
    calls = channel().render("Biaya < Rp 10.000 & gratis untuk <lansia>", [], private_inbound())
    assert calls == [Outgoing("sendMessage", {
        "chat_id": str(USER),
        "text": "Biaya &lt; Rp 10.000 &amp; gratis untuk &lt;lansia&gt;",
        "parse_mode": "HTML",
    })]
    visible = html_visible_text(calls[0].payload["text"])
    assert visible == "Biaya < Rp 10.000 & gratis untuk <lansia>"


def test_render_splits_a_long_reply_with_buttons_on_the_last_part_only() -> None:
    reply = "\n\n".join(["a&b " * 600] * 3)  # ~7200 visible characters; & escapes to &amp;
    buttons = [Button("KTP", "/faq/ktp"), Button("Tidak ada", "/none")]
    calls = channel().render(reply, buttons, private_inbound())
    assert [c.method for c in calls] == ["sendMessage"] * len(calls)
    assert len(calls) >= 2
    for call in calls:
        # The limit counts what the user sees, not the escaped HTML.
        assert len(html_visible_text(call.payload["text"])) <= 4096
    assert all("reply_markup" not in c.payload for c in calls[:-1])
    assert calls[-1].payload["reply_markup"] == {"inline_keyboard": [
        [{"text": "KTP", "callback_data": "/faq/ktp"}],
        [{"text": "Tidak ada", "callback_data": "/none"}],
    ]}
    json.dumps([c.payload for c in calls])  # stored in the outbox as JSON


def test_render_drops_a_button_whose_payload_is_over_64_bytes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    long_payload = "/faq/" + "x" * 60
    with caplog.at_level(logging.WARNING, logger="bot.channels.telegram"):
        calls = channel().render("Pilih:", [Button("Panjang", long_payload),
                                            Button("KTP", "/faq/ktp")], private_inbound())
    assert calls[-1].payload["reply_markup"] == {
        "inline_keyboard": [[{"text": "KTP", "callback_data": "/faq/ktp"}]]}
    assert long_payload in caplog.text


def test_render_answers_the_callback_before_replying() -> None:
    inbound = private_inbound(kind=BUTTON, text="/faq/ktp", callback_id="q-1")
    calls = channel().render("Syarat KTP: ...", [], inbound)
    assert calls[0] == Outgoing("answerCallbackQuery", {"callback_query_id": "q-1"})
    assert [c.method for c in calls[1:]] == ["sendMessage"]


def test_render_in_a_group_quotes_the_question_on_the_first_part() -> None:
    inbound = private_inbound(chat_id=str(GROUP), is_group=True, reply_to="321")
    calls = channel().render("x " * 3000, [Button("KTP", "/faq/ktp")], inbound)
    assert len(calls) == 2
    assert calls[0].payload["reply_parameters"] == {
        "message_id": 321, "allow_sending_without_reply": True}
    assert "reply_parameters" not in calls[1].payload


# --- sending over HTTP ------------------------------------------------------------------


def run_with_stub(
    scenario: Callable[[TelegramChannel, TelegramStub], Awaitable[Any]],
    stub: TelegramStub | None = None,
    **settings: Any,
) -> Any:
    stub = stub or TelegramStub(TOKEN)
    with serve(stub.app) as url:
        async def main() -> Any:
            ch = TelegramChannel(
                Settings(telegram_token=Secret(TOKEN), telegram_api_url=url, **settings),
                InProcessRateLimiter(),
            )
            await ch.start()
            try:
                return await scenario(ch, stub)
            finally:
                await ch.stop()

        return asyncio.run(main())


def test_start_learns_the_bot_username_via_get_me() -> None:
    async def scenario(ch: TelegramChannel, stub: TelegramStub) -> str | None:
        return ch.username

    stub = TelegramStub(TOKEN)
    assert run_with_stub(scenario, stub) == BOT_USERNAME
    assert [c.method for c in stub.calls] == ["getMe"]


def test_wrong_token_is_rejected_at_start() -> None:
    stub = TelegramStub("1:other")
    with serve(stub.app) as url:
        ch = TelegramChannel(Settings(telegram_token=Secret(TOKEN), telegram_api_url=url),
                             InProcessRateLimiter())
        with pytest.raises(Exception, match=r"Unauthorized|rejected"):
            asyncio.run(ch.start())


def test_send_delivers_html_text_with_the_keyboard() -> None:
    async def scenario(ch: TelegramChannel, stub: TelegramStub) -> list[str | None]:
        inbound = private_inbound(kind=BUTTON, text="/faq", callback_id="cb-9")
        calls = ch.render("Biaya < Rp 10.000 & gratis", [Button("KTP", "/faq/ktp")], inbound)
        context = SendContext(chat_id=str(USER), last_inbound_at=None)
        return [(await ch.send(call, context)).platform_message_id for call in calls]

    stub = TelegramStub(TOKEN)
    ids = run_with_stub(scenario, stub)
    assert ids == [None, "1"]
    assert stub.calls_to("answerCallbackQuery")[0].params["callback_query_id"] == "cb-9"
    [sent] = stub.sent()
    assert sent["chat_id"] == USER
    assert sent["parse_mode"] == "HTML"
    assert sent["text"] == "Biaya &lt; Rp 10.000 &amp; gratis"
    assert sent["reply_markup"] == {
        "inline_keyboard": [[{"text": "KTP", "callback_data": "/faq/ktp"}]]}


def test_send_quotes_the_question_in_a_group() -> None:
    async def scenario(ch: TelegramChannel, stub: TelegramStub) -> None:
        inbound = private_inbound(chat_id=str(GROUP), is_group=True, reply_to="321")
        [call] = ch.render("Buka jam 08.00.", [], inbound)
        await ch.send(call, SendContext(chat_id=str(GROUP), last_inbound_at=None, is_group=True))

    stub = TelegramStub(TOKEN)
    run_with_stub(scenario, stub)
    [sent] = stub.sent()
    assert sent["chat_id"] == GROUP
    assert sent["reply_parameters"] == {"message_id": 321, "allow_sending_without_reply": True}


def test_unescaped_html_is_refused_by_the_stub_as_by_telegram() -> None:
    async def scenario(ch: TelegramChannel, stub: TelegramStub) -> SendError:
        call = Outgoing("sendMessage", {"chat_id": str(USER), "text": "a <lansia> b",
                                        "parse_mode": "HTML"})
        with pytest.raises(SendError) as caught:
            await ch.send(call, SendContext(chat_id=str(USER), last_inbound_at=None))
        return caught.value

    error = run_with_stub(scenario)
    assert not error.retryable
    assert "parse entities" in error.reason.lower()
    assert "lansia" not in error.reason  # no message content in the reason


def test_429_is_retryable_with_telegrams_retry_after_and_nothing_else_is_sent() -> None:
    async def scenario(ch: TelegramChannel, stub: TelegramStub) -> SendError:
        stub.fail_next("sendMessage", status=429, retry_after=7)
        [call] = ch.render("Halo", [], private_inbound())
        with pytest.raises(SendError) as caught:
            await ch.send(call, SendContext(chat_id=str(USER), last_inbound_at=None))
        await asyncio.sleep(0.2)  # time for any hidden retry to show up
        return caught.value

    stub = TelegramStub(TOKEN)
    error = run_with_stub(scenario, stub)
    assert error.retryable
    assert error.retry_after == 7.0
    assert len(stub.calls_to("sendMessage")) == 1


def test_500_is_retryable_and_sent_once() -> None:
    async def scenario(ch: TelegramChannel, stub: TelegramStub) -> SendError:
        stub.fail_next("sendMessage", status=500)
        [call] = ch.render("Halo", [], private_inbound())
        with pytest.raises(SendError) as caught:
            await ch.send(call, SendContext(chat_id=str(USER), last_inbound_at=None))
        await asyncio.sleep(0.2)
        return caught.value

    stub = TelegramStub(TOKEN)
    error = run_with_stub(scenario, stub)
    assert error.retryable and error.retry_after is None
    assert len(stub.calls_to("sendMessage")) == 1


def test_403_blocked_bot_is_not_retryable_and_the_reason_names_no_chat_or_token() -> None:
    async def scenario(ch: TelegramChannel, stub: TelegramStub) -> SendError:
        stub.block(USER)
        [call] = ch.render("Halo", [], private_inbound())
        with pytest.raises(SendError) as caught:
            await ch.send(call, SendContext(chat_id=str(USER), last_inbound_at=None))
        return caught.value

    error = run_with_stub(scenario)
    assert not error.retryable
    assert "forbidden" in error.reason
    assert str(USER) not in error.reason and TOKEN not in error.reason


def test_connection_refused_is_retryable() -> None:
    stub = TelegramStub(TOKEN)

    async def scenario() -> SendError:
        with serve(stub.app) as url:
            ch = TelegramChannel(Settings(telegram_token=Secret(TOKEN), telegram_api_url=url),
                                 InProcessRateLimiter())
            await ch.start()
        # The Bot API is gone now.
        try:
            [call] = ch.render("Halo", [], private_inbound())
            with pytest.raises(SendError) as caught:
                await ch.send(call, SendContext(chat_id=str(USER), last_inbound_at=None))
            return caught.value
        finally:
            await ch.stop()

    error = asyncio.run(scenario())
    assert error.retryable
    assert TOKEN not in error.reason and "/bot" not in error.reason


def test_no_answer_after_sending_is_not_retried_as_it_may_have_been_delivered() -> None:
    stub = TelegramStub(TOKEN)

    async def scenario() -> SendError:
        with serve(stub.app) as url:
            ch = TelegramChannel(Settings(telegram_token=Secret(TOKEN), telegram_api_url=url),
                                 InProcessRateLimiter(), request_timeout=0.3)
            await ch.start()
            try:
                stub.delay_next("sendMessage", 1.0)
                [call] = ch.render("Halo", [], private_inbound())
                with pytest.raises(SendError) as caught:
                    await ch.send(call, SendContext(chat_id=str(USER), last_inbound_at=None))
                return caught.value
            finally:
                await ch.stop()

    error = asyncio.run(scenario())
    assert not error.retryable
    assert "ReadTimeout" in error.reason
    assert len(stub.sent()) == 1  # the stub did take it: a retry would be a second copy


def test_per_chat_limit_spaces_one_chat_while_another_is_not_delayed() -> None:
    async def scenario(ch: TelegramChannel, stub: TelegramStub) -> float:
        start = time.monotonic()
        a = [ch.render(f"pesan {i}", [], private_inbound())[0] for i in range(3)]
        b = ch.render("pesan lain", [], private_inbound(chat_id="777"))[0]
        ctx_a = SendContext(chat_id=str(USER), last_inbound_at=None)
        ctx_b = SendContext(chat_id="777", last_inbound_at=None)
        await asyncio.gather(*(ch.send(call, ctx_a) for call in a), ch.send(b, ctx_b))
        return start

    stub = TelegramStub(TOKEN)
    run_with_stub(scenario, stub, telegram_chat_rate=5.0, telegram_chat_burst=1,
                  telegram_global_rate=1000.0)
    sends = stub.calls_to("sendMessage")
    to_a = sorted(c.at for c in sends if c.params["chat_id"] == USER)
    to_b = [c.at for c in sends if c.params["chat_id"] == 777]
    assert len(to_a) == 3 and len(to_b) == 1
    gaps = [y - x for x, y in itertools.pairwise(to_a)]
    assert all(gap > 0.15 for gap in gaps), gaps  # 5/s: 0.2 s apart
    assert to_b[0] < to_a[1]  # the other chat went out without waiting behind chat A


def test_group_limit_applies_per_group() -> None:
    async def scenario(ch: TelegramChannel, stub: TelegramStub) -> None:
        inbound = private_inbound(chat_id=str(GROUP), is_group=True, reply_to="5")
        ctx = SendContext(chat_id=str(GROUP), last_inbound_at=None, is_group=True)
        calls = [ch.render(f"balasan {i}", [], inbound)[0] for i in range(2)]
        await asyncio.gather(*(ch.send(call, ctx) for call in calls))

    stub = TelegramStub(TOKEN)
    # 300 a minute = 5/s per group; the per-chat limit alone would let both through at once.
    run_with_stub(scenario, stub, telegram_group_per_minute=300, telegram_chat_rate=100.0,
                  telegram_chat_burst=5, telegram_global_rate=1000.0)
    first, second = sorted(c.at for c in stub.calls_to("sendMessage"))
    assert second - first > 0.15


# --- polling and webhook ----------------------------------------------------------------


def test_poll_hands_queued_updates_in_order_and_advances_the_offset() -> None:
    stub = TelegramStub(TOKEN, max_poll_wait=0.2)
    stub.push_update(text_update(500, USER, "satu"))
    stub.push_update(text_update(501, USER, "dua"))

    async def scenario(ch: TelegramChannel, stub: TelegramStub) -> list[int]:
        stop = asyncio.Event()
        seen: list[int] = []

        async def handle(update: dict) -> bool:
            seen.append(update["update_id"])
            if len(seen) == 2:
                stop.set()
            return True

        await asyncio.wait_for(ch.poll(handle, stop, timeout=1), 10)
        return seen

    seen = run_with_stub(scenario, stub)
    assert seen == [500, 501]
    assert stub.calls_to("deleteWebhook")[0].params.get("drop_pending_updates") is False
    polls = stub.calls_to("getUpdates")
    assert polls[0].params["allowed_updates"] == ["message", "callback_query"]
    assert "offset" not in polls[0].params
    assert polls[-1].params["offset"] == 502  # confirmed before returning
    assert stub.pending_updates() == []


def test_poll_offers_an_update_again_when_the_handler_did_not_store_it() -> None:
    stub = TelegramStub(TOKEN, max_poll_wait=0.2)
    stub.push_update(text_update(600, USER, "satu"))
    stub.push_update(text_update(601, USER, "dua"))

    async def scenario(ch: TelegramChannel, stub: TelegramStub) -> list[int]:
        stop = asyncio.Event()
        seen: list[int] = []
        failures = {600: 1, 601: 1}  # the first offer of each fails (False, then an error)

        async def handle(update: dict) -> bool:
            update_id = update["update_id"]
            seen.append(update_id)
            if failures[update_id]:
                failures[update_id] -= 1
                if update_id == 601:
                    raise RuntimeError("database unavailable")
                return False
            if update_id == 601:
                stop.set()
            return True

        await asyncio.wait_for(ch.poll(handle, stop, timeout=1, initial_backoff=0.05), 10)
        return seen

    seen = run_with_stub(scenario, stub)
    assert seen == [600, 600, 601, 601]
    offsets = [c.params.get("offset") for c in stub.calls_to("getUpdates")]
    assert offsets[:3] == [None, None, 601]  # not advanced past 600 until it was stored
    assert offsets[-1] == 602


def test_poll_stops_promptly_during_a_long_poll() -> None:
    stub = TelegramStub(TOKEN, max_poll_wait=5.0)

    async def scenario(ch: TelegramChannel, stub: TelegramStub) -> float:
        stop = asyncio.Event()

        async def handle(update: dict) -> bool:
            return True

        task = asyncio.ensure_future(ch.poll(handle, stop, timeout=25))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        stop.set()
        await asyncio.wait_for(task, 5)
        return time.monotonic() - started

    assert run_with_stub(scenario, stub) < 1.0


def test_set_webhook_registers_url_secret_and_update_types() -> None:
    async def scenario(ch: TelegramChannel, stub: TelegramStub) -> None:
        await ch.set_webhook("https://garda.example.go.id/telegram", "s3cret-path")

    stub = TelegramStub(TOKEN)
    run_with_stub(scenario, stub)
    assert stub.webhook.url == "https://garda.example.go.id/telegram"
    assert stub.webhook.secret_token == "s3cret-path"
    assert stub.webhook.allowed_updates == ["message", "callback_query"]


def test_neither_the_token_nor_the_text_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(ch: TelegramChannel, stub: TelegramStub) -> None:
        [call] = ch.render("Halo", [], private_inbound())
        await ch.send(call, SendContext(chat_id=str(USER), last_inbound_at=None))

    # Undo the test session's logging set-up: the channel itself must quiet the libraries.
    loggers = [logging.getLogger(name) for name in ("httpx", "httpcore", "telegram")]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.NOTSET)
    try:
        with caplog.at_level(logging.DEBUG):
            run_with_stub(scenario)
    finally:
        for logger, level in zip(loggers, saved, strict=True):
            logger.setLevel(level)
    assert TOKEN not in caplog.text
    assert "Halo" not in caplog.text
