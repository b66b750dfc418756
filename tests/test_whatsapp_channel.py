"""The WhatsApp Cloud API channel: webhook verification and parsing, rendering, sending
against the Graph API stub over real HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.datastructures import Secret

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
    SendResult,
)
from bot.channels.whatsapp import (
    WhatsAppChannel,
    parse_webhook,
    split_text,
    verify_handshake,
    verify_signature,
)
from bot.config import ConfigError, Settings
from tests.stubs import serve
from tests.stubs.whatsapp import (
    APP_SECRET,
    PHONE_NUMBER_ID,
    REENGAGEMENT_ERROR,
    TOKEN,
    VERIFY_TOKEN,
    GraphStub,
    button_reply,
    combine,
    encode,
    list_reply,
    media_message,
    reaction_message,
    sign,
    status_update,
    stub_settings,
    template_button,
    text_message,
    validate,
)

WA_ID = "6281234567890"
UTC = dt.timezone.utc


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


def inbound(chat_id: str = WA_ID) -> Inbound:
    return Inbound(channel="whatsapp", platform_id="wamid.IN", chat_id=chat_id, kind=TEXT,
                   text="halo")


def recent() -> SendContext:
    return SendContext(chat_id=WA_ID, last_inbound_at=now() - dt.timedelta(minutes=5))


def offline_channel(**kwargs: Any) -> WhatsAppChannel:
    return WhatsAppChannel(stub_settings("http://127.0.0.1:9"), **kwargs)


@pytest.fixture
def stub() -> GraphStub:
    return GraphStub()


@pytest.fixture
def url(stub: GraphStub) -> Iterator[str]:
    with serve(stub.app) as base:
        yield base


def send(url: str, call: Outgoing, context: SendContext, **kwargs: Any) -> SendResult:
    async def run() -> SendResult:
        channel = WhatsAppChannel(stub_settings(url), **kwargs)
        await channel.start()
        try:
            return await channel.send(call, context)
        finally:
            await channel.stop()

    return asyncio.run(run())


def send_error(url: str, call: Outgoing, context: SendContext, **kwargs: Any) -> SendError:
    with pytest.raises(SendError) as caught:
        send(url, call, context, **kwargs)
    return caught.value


def text_call(body: str = "Halo, ada yang bisa dibantu?") -> Outgoing:
    return offline_channel().render(body, [], inbound())[0]


# --- signature and handshake -------------------------------------------------------------


def test_signature_valid_over_raw_bytes() -> None:
    raw = encode(text_message(WA_ID, "Bagaimana cara membuat KTP?"))
    assert verify_signature(raw, sign(raw, APP_SECRET), APP_SECRET)


def test_signature_from_wrong_secret_is_refused() -> None:
    raw = encode(text_message(WA_ID, "halo"))
    assert not verify_signature(raw, sign(raw, "another-secret"), APP_SECRET)


def test_signature_of_tampered_body_is_refused() -> None:
    raw = encode(text_message(WA_ID, "halo"))
    header = sign(raw, APP_SECRET)
    assert not verify_signature(raw.replace(b"halo", b"hal0"), header, APP_SECRET)


def test_signature_missing_or_malformed_is_refused() -> None:
    raw = encode(text_message(WA_ID, "halo"))
    good = sign(raw, APP_SECRET)
    digest = good.removeprefix("sha256=")
    assert verify_signature(raw, good, APP_SECRET)  # the control
    for header in (None, "", digest, "sha1=" + digest, "sha256=", "sha256=zz", "sha256"):
        assert not verify_signature(raw, header, APP_SECRET), header
    assert not verify_signature(raw, good, "")


def test_signature_is_over_the_raw_bytes_not_a_reserialisation() -> None:
    body = text_message(WA_ID, "Apakah benar ada bansos Rp 5 juta? 🙏")
    raw = encode(body)  # compact, UTF-8 as Meta sends it
    header = sign(raw, APP_SECRET)
    reserialised = json.dumps(json.loads(raw)).encode()  # spaces, \\u escapes
    assert json.loads(reserialised) == json.loads(raw)
    assert verify_signature(raw, header, APP_SECRET)
    assert not verify_signature(reserialised, header, APP_SECRET)


def test_handshake_echoes_challenge() -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
              "hub.challenge": "1158201444"}
    assert verify_handshake(params, VERIFY_TOKEN) == "1158201444"


def test_handshake_with_wrong_token_or_mode_is_refused() -> None:
    base = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}
    assert verify_handshake({**base, "hub.verify_token": "guess"}, VERIFY_TOKEN) is None
    assert verify_handshake({**base, "hub.mode": "unsubscribe"}, VERIFY_TOKEN) is None
    assert verify_handshake({k: v for k, v in base.items() if k != "hub.verify_token"},
                            VERIFY_TOKEN) is None
    assert verify_handshake(base, "") is None


# --- parsing -----------------------------------------------------------------------------


def test_parse_text_message() -> None:
    body = text_message(WA_ID, "Syarat bikin KTP apa saja?", msg_id="wamid.A1", ts=1_700_000_000)
    messages, statuses = parse_webhook(body, PHONE_NUMBER_ID)
    assert statuses == []
    assert messages == [Inbound(channel="whatsapp", platform_id="wamid.A1", chat_id=WA_ID,
                                kind=TEXT, text="Syarat bikin KTP apa saja?",
                                sent_at=dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC))]
    assert messages[0].sent_at is not None and messages[0].sent_at.tzinfo is not None


def test_parse_button_reply_gives_its_payload() -> None:
    body = button_reply(WA_ID, "/faq/ktp_baru", title="KTP baru", msg_id="wamid.B1")
    (message,), _ = parse_webhook(body, PHONE_NUMBER_ID)
    assert (message.kind, message.text, message.platform_id) == (BUTTON, "/faq/ktp_baru",
                                                                 "wamid.B1")


def test_parse_list_reply_gives_its_row_id() -> None:
    body = list_reply(WA_ID, "/none", title="Bukan semuanya", description="Bukan semuanya")
    (message,), _ = parse_webhook(body, PHONE_NUMBER_ID)
    assert (message.kind, message.text, message.chat_id) == (BUTTON, "/none", WA_ID)


def test_parse_template_quick_reply_uses_payload_then_text() -> None:
    (with_payload,), _ = parse_webhook(template_button(WA_ID, "/faq/kk", text="Ya"), None)
    (text_only,), _ = parse_webhook(template_button(WA_ID, None, text="Ya"), None)
    assert (with_payload.kind, with_payload.text) == (BUTTON, "/faq/kk")
    assert (text_only.kind, text_only.text) == (BUTTON, "Ya")


@pytest.mark.parametrize(
    "kind", ["image", "audio", "video", "document", "sticker", "location", "contacts",
             "unsupported"],
)
def test_parse_media_kinds(kind: str) -> None:
    (message,), _ = parse_webhook(media_message(WA_ID, kind), PHONE_NUMBER_ID)
    assert (message.kind, message.detail, message.text) == (MEDIA, kind, "")


def test_parse_unknown_type_is_media_and_reaction_is_skipped() -> None:
    unknown = media_message(WA_ID, "hologram")
    (message,), _ = parse_webhook(unknown, None)
    assert (message.kind, message.detail) == (MEDIA, "hologram")
    assert parse_webhook(reaction_message(WA_ID), None) == ([], [])


def test_parse_statuses_with_failure_error() -> None:
    body = combine(
        status_update("wamid.S1", "delivered", WA_ID, ts=1_700_000_100),
        status_update("wamid.S2", "failed", WA_ID, errors=[REENGAGEMENT_ERROR]),
    )
    messages, (delivered, failed) = parse_webhook(body, PHONE_NUMBER_ID)
    assert messages == []
    assert (delivered.platform_message_id, delivered.status, delivered.error) == (
        "wamid.S1", "delivered", None)
    assert delivered.at == dt.datetime.fromtimestamp(1_700_000_100, tz=UTC)
    assert (failed.platform_message_id, failed.status) == ("wamid.S2", "failed")
    assert failed.error == "131047 Re-engagement message"
    assert "24 hours" not in failed.error  # the details are not carried


def test_parse_several_messages_in_one_body_keeps_order() -> None:
    body = combine(text_message(WA_ID, "satu", msg_id="wamid.1"),
                   text_message("6289876543210", "dua", msg_id="wamid.2"),
                   button_reply(WA_ID, "/faq/kk", msg_id="wamid.3"))
    messages, _ = parse_webhook(body, PHONE_NUMBER_ID)
    assert [(m.platform_id, m.chat_id, m.text) for m in messages] == [
        ("wamid.1", WA_ID, "satu"), ("wamid.2", "6289876543210", "dua"),
        ("wamid.3", WA_ID, "/faq/kk")]


def test_parse_ignores_another_phone_number_id() -> None:
    foreign = text_message(WA_ID, "bukan untuk kita", phone_number_id="999999999")
    assert parse_webhook(foreign, PHONE_NUMBER_ID) == ([], [])
    body = {"object": "whatsapp_business_account",
            "entry": [*foreign["entry"], *text_message(WA_ID, "untuk kita")["entry"]]}
    messages, _ = parse_webhook(body, PHONE_NUMBER_ID)
    assert [m.text for m in messages] == ["untuk kita"]
    # Without a configured id every change is taken.
    assert len(parse_webhook(body, None)[0]) == 2


def test_parse_other_webhook_fields_yield_nothing() -> None:
    body = {"object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "message_template_status_update",
                                               "value": {"event": "APPROVED",
                                                         "message_template_id": 1}}]}]}
    assert parse_webhook(body, PHONE_NUMBER_ID) == ([], [])


@pytest.mark.parametrize(
    "body",
    [
        [],
        "text",
        {},
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account"},
        {"object": "whatsapp_business_account", "entry": {}},
        {"object": "whatsapp_business_account", "entry": ["x"]},
        {"object": "whatsapp_business_account", "entry": [{"changes": "x"}]},
        {"object": "whatsapp_business_account",
         "entry": [{"changes": [{"value": {"messages": {"id": "x"}}}]}]},
        {"object": "whatsapp_business_account",
         "entry": [{"changes": [{"value": {"messages": [{"type": "text"}]}}]}]},
        {"object": "whatsapp_business_account",
         "entry": [{"changes": [{"value": {"messages": [
             {"id": "wamid.X", "from": WA_ID, "type": "text", "text": "flat"}]}}]}]},
        {"object": "whatsapp_business_account",
         "entry": [{"changes": [{"value": {"statuses": [{"status": "sent"}]}}]}]},
    ],
)
def test_parse_malformed_bodies_raise(body: Any) -> None:
    with pytest.raises(MalformedUpdate):
        parse_webhook(body, PHONE_NUMBER_ID)


# --- rendering ---------------------------------------------------------------------------


def test_render_short_text() -> None:
    (call,) = offline_channel().render("Halo! Ada yang bisa dibantu?", [], inbound())
    assert call.method == "messages"
    assert call.payload == {"messaging_product": "whatsapp", "recipient_type": "individual",
                            "to": WA_ID, "type": "text",
                            "text": {"body": "Halo! Ada yang bisa dibantu?",
                                     "preview_url": False}}
    assert validate(call.payload) is None


def test_render_long_text_splits_at_paragraphs_within_4096() -> None:
    paragraphs = [f"Paragraf {i}: " + "syarat dokumen " * 60 for i in range(12)]
    reply = "\n\n".join(paragraphs)
    calls = offline_channel().render(reply, [], inbound())
    bodies = [c.payload["text"]["body"] for c in calls]
    assert len(bodies) > 1
    assert all(len(b) <= 4096 for b in bodies)
    assert all(b.startswith("Paragraf ") for b in bodies)  # cut at paragraph boundaries
    assert " ".join(" ".join(bodies).split()) == " ".join(reply.split())  # nothing lost
    assert all(validate(c.payload) is None for c in calls)


def test_split_text_without_breaks_cuts_hard_and_keeps_everything() -> None:
    word = "x" * 10_000
    pieces = split_text(word, 4096)
    assert [len(p) for p in pieces] == [4096, 4096, 1808]
    assert "".join(pieces) == word
    spaced = split_text("aaa bbb ccc", 7)
    assert spaced == ["aaa bbb", "ccc"]


def test_render_buttons_as_interactive_reply_buttons() -> None:
    buttons = [Button("KTP baru", "/faq/ktp_baru"), Button("Bukan semuanya", "/none")]
    (call,) = offline_channel().render("Maksud Anda yang mana?", buttons, inbound())
    interactive = call.payload["interactive"]
    assert call.payload["type"] == "interactive"
    assert interactive["type"] == "button"
    assert interactive["body"] == {"text": "Maksud Anda yang mana?"}
    assert interactive["action"]["buttons"] == [
        {"type": "reply", "reply": {"id": "/faq/ktp_baru", "title": "KTP baru"}},
        {"type": "reply", "reply": {"id": "/none", "title": "Bukan semuanya"}},
    ]
    assert validate(call.payload) is None


def test_render_long_titles_become_a_list() -> None:
    long_title = "Pembuatan Kartu Keluarga untuk penduduk baru"  # 44 characters
    buttons = [Button(long_title, "/faq/kk_baru"), Button("KTP", "/faq/ktp")]
    (call,) = offline_channel().render("Pilih salah satu:", buttons, inbound())
    interactive = call.payload["interactive"]
    assert interactive["type"] == "list"
    assert interactive["action"]["button"] == "Pilih topik"
    (section,) = interactive["action"]["sections"]
    first, second = section["rows"]
    assert first["id"] == "/faq/kk_baru"
    assert len(first["title"]) == 24 and first["title"].endswith("…")
    assert long_title.startswith(first["title"][:-1].rstrip())
    assert first["description"] == long_title
    assert second == {"id": "/faq/ktp", "title": "KTP"}
    assert validate(call.payload) is None


def test_render_more_than_three_buttons_become_a_list_of_at_most_ten() -> None:
    buttons = [Button(f"Topik {i}", f"/faq/t{i}") for i in range(12)]
    (call,) = offline_channel().render("Pilih:", buttons, inbound())
    rows = call.payload["interactive"]["action"]["sections"][0]["rows"]
    assert call.payload["interactive"]["type"] == "list"
    assert [r["id"] for r in rows] == [f"/faq/t{i}" for i in range(10)]
    assert validate(call.payload) is None


def test_render_long_reply_with_buttons_sends_text_first() -> None:
    lead = "\n\n".join("Informasi penting tentang layanan kependudukan. " * 10
                       for _ in range(4))
    question = "Apakah jawaban ini membantu?"
    reply = f"{lead}\n\n{question}"
    assert len(reply) > 1024
    calls = offline_channel().render(reply, [Button("Ya", "/faq/ya"), Button("Tidak", "/none")],
                                     inbound())
    *texts, last = calls
    assert texts and all(c.payload["type"] == "text" for c in texts)
    assert last.payload["type"] == "interactive"
    body = last.payload["interactive"]["body"]["text"]
    assert len(body) <= 1024 and body.endswith(question)
    joined = " ".join([*(c.payload["text"]["body"] for c in texts), body])
    assert " ".join(joined.split()) == " ".join(reply.split())
    assert all(validate(c.payload) is None for c in calls)


def test_render_never_adds_text_to_buttons_reply() -> None:
    reply = "Silakan pilih layanan."
    (call,) = offline_channel().render(reply, [Button("A", "/faq/a")], inbound())
    assert call.payload["interactive"]["body"]["text"] == reply
    assert "header" not in call.payload["interactive"]
    assert "footer" not in call.payload["interactive"]


def test_channel_requires_token_and_phone_number_id() -> None:
    with pytest.raises(ConfigError):
        WhatsAppChannel(Settings())
    with pytest.raises(ConfigError):
        WhatsAppChannel(stub_settings("http://x", whatsapp_phone_number_id=None))


# --- sending over HTTP -------------------------------------------------------------------


def test_send_text_reaches_stub_with_bearer_and_returns_wamid(stub: GraphStub, url: str) -> None:
    call = text_call("Syarat KTP: fotokopi KK.")
    result = send(url, call, recent())
    (received,) = stub.requests
    assert received.path == f"/v21.0/{PHONE_NUMBER_ID}/messages"
    assert received.headers["authorization"] == f"Bearer {TOKEN}"
    assert received.json == call.payload
    assert received.json["text"]["body"] == "Syarat KTP: fotokopi KK."
    assert result.platform_message_id is not None
    assert result.platform_message_id.startswith("wamid.")


def test_send_interactive_and_list_are_accepted(stub: GraphStub, url: str) -> None:
    channel = offline_channel()
    buttons = [Button("Pembuatan Kartu Keluarga baru", "/faq/kk"), Button("KTP", "/faq/ktp")]
    (as_list,) = channel.render("Pilih:", buttons, inbound())
    (as_buttons,) = channel.render("Pilih:", buttons[1:], inbound())
    ids = {send(url, as_list, recent()).platform_message_id,
           send(url, as_buttons, recent()).platform_message_id}
    assert len(ids) == 2 and None not in ids
    assert [m["interactive"]["type"] for m in stub.messages()] == ["list", "button"]


def test_send_wrong_token_is_refused_and_not_retryable(stub: GraphStub, url: str) -> None:
    async def run() -> SendResult:
        channel = WhatsAppChannel(stub_settings(url, whatsapp_token=Secret("expired-token")))
        await channel.start()
        try:
            return await channel.send(text_call(), recent())
        finally:
            await channel.stop()

    with pytest.raises(SendError) as caught:
        asyncio.run(run())
    assert not caught.value.retryable
    assert "401" in caught.value.reason and "code 190" in caught.value.reason
    assert "expired-token" not in caught.value.reason
    assert stub.requests[0].headers["authorization"] == "Bearer expired-token"


def test_send_429_is_retryable_with_retry_after(stub: GraphStub, url: str) -> None:
    stub.fail_next(status=429, headers={"Retry-After": "7"})
    error = send_error(url, text_call(), recent())
    assert error.retryable
    assert error.retry_after == 7.0
    assert "130429" in error.reason
    # The next call goes through.
    assert send(url, text_call(), recent()).platform_message_id


def test_send_500_is_retryable(stub: GraphStub, url: str) -> None:
    stub.fail_next(status=500)
    error = send_error(url, text_call(), recent())
    assert error.retryable and error.retry_after is None
    assert len(stub.requests) == 1


def test_send_400_is_not_retryable_and_reason_has_no_content(stub: GraphStub, url: str) -> None:
    call = text_call()
    bad = Outgoing("messages", {**call.payload, "text": {"body": "x" * 5000}})
    error = send_error(url, bad, recent())
    assert not error.retryable
    assert "code 100" in error.reason
    assert "xxxx" not in error.reason and WA_ID not in error.reason


def test_send_pair_rate_limit_code_is_retryable_even_as_400(stub: GraphStub, url: str) -> None:
    from tests.stubs.whatsapp import graph_error

    stub.fail_next(status=400, error=graph_error(
        "(#131056) (Business Account, Consumer Account) pair rate limit hit", 131056))
    error = send_error(url, text_call(), recent())
    assert error.retryable and "131056" in error.reason


def test_send_connection_refused_is_retryable() -> None:
    from tests.stubs import free_port

    error = send_error(f"http://127.0.0.1:{free_port()}", text_call(), recent())
    assert error.retryable


def test_send_outside_window_without_template_sends_nothing(stub: GraphStub, url: str) -> None:
    for last in (None, now() - dt.timedelta(hours=24, minutes=1)):
        error = send_error(url, text_call(), SendContext(chat_id=WA_ID, last_inbound_at=last))
        assert not error.retryable
        assert "24-hour" in error.reason
    assert stub.requests == []
    # Just inside the window the same call is sent.
    inside = SendContext(chat_id=WA_ID, last_inbound_at=now() - dt.timedelta(hours=23))
    assert send(url, text_call(), inside).platform_message_id
    assert len(stub.requests) == 1


def test_send_outside_window_with_template_sends_the_template(
    stub: GraphStub, url: str
) -> None:
    stale = SendContext(chat_id=WA_ID, last_inbound_at=now() - dt.timedelta(days=2))
    result = send(url, text_call("Jawaban bebas"), stale, template=("garda_lanjut", "id"))
    (message,) = stub.messages()
    assert message["type"] == "template"
    assert message["template"] == {"name": "garda_lanjut", "language": {"code": "id"}}
    assert message["to"] == WA_ID
    assert "text" not in message and "Jawaban bebas" not in json.dumps(message)
    assert result.platform_message_id


def test_send_naive_last_inbound_is_taken_as_utc(stub: GraphStub, url: str) -> None:
    naive = (now() - dt.timedelta(minutes=1)).replace(tzinfo=None)
    assert send(url, text_call(), SendContext(WA_ID, naive)).platform_message_id


def test_send_does_not_log_token_body_or_number(
    stub: GraphStub, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    send(url, text_call("Rahasia isi pesan"), recent())
    stub.fail_next(status=400)
    with pytest.raises(SendError):
        send(url, text_call("Rahasia isi pesan"), recent())
    logged = "\n".join(r.getMessage() for r in caplog.records
                       if not r.name.startswith(("httpcore", "asyncio")))
    assert "whatsapp" in logged  # something was logged ...
    assert TOKEN not in logged and "Rahasia" not in logged and WA_ID not in logged
    assert logging.getLogger("httpx").getEffectiveLevel() > logging.INFO
