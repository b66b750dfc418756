"""`garda run` end to end: real HTTP in, the real trained model, replies at local stub
servers that speak the Telegram Bot API and the WhatsApp Cloud API.

The same suite runs against the embedded default (SQLite, in-process queue) and against
PostgreSQL with Redis; Telegram long polling has its own small deployment.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import html
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import PostgresServer, RedisServer
from sqlalchemy import create_engine, text
from stubs import free_port, serve
from stubs import telegram as tg
from stubs import whatsapp as wa

from bot.content import Content

ROOT = Path(__file__).resolve().parent.parent
TG_TOKEN = "7000001:AAH-test-token-for-the-stub-0123456789"
TG_SECRET = "webhook-secret-3f9a8c1d"
KTP_QUESTION = "min mau tanya cara bikin ktp gmn ya"

pytestmark = pytest.mark.model


@dataclass
class Deployment:
    name: str
    url: str
    database_url: str
    telegram: tg.TelegramStub
    graph: wa.GraphStub
    proc: subprocess.Popen[bytes]
    log: Path
    redis: RedisServer | None = None
    engine: Any = field(default=None)

    def sql(self, query: str, **params: Any) -> list[Any]:
        if self.engine is None:
            self.engine = create_engine(self.database_url)
        with self.engine.connect() as conn:
            return list(conn.execute(text(query), params).all())

    def inbound(self, channel: str, platform_id: str | None = None) -> int:
        query = "SELECT count(*) FROM inbound WHERE channel = :c"
        if platform_id is not None:
            query += " AND platform_id = :p"
        return int(self.sql(query, c=channel, p=platform_id)[0][0])

    def post_telegram(self, update: Any, *, secret: str | None = TG_SECRET,
                      content: bytes | None = None,
                      content_type: str = "application/json") -> httpx.Response:
        headers = {"content-type": content_type}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        body = content if content is not None else json.dumps(update).encode()
        return httpx.post(f"{self.url}/webhooks/telegram", content=body, headers=headers,
                          timeout=30)

    def post_whatsapp(self, body: dict[str, Any], *, signature: str | None = "valid",
                      ) -> httpx.Response:
        raw = wa.encode(body)
        headers = {"content-type": "application/json"}
        if signature == "valid":
            headers["X-Hub-Signature-256"] = wa.sign(raw)
        elif signature is not None:
            headers["X-Hub-Signature-256"] = signature
        return httpx.post(f"{self.url}/webhooks/whatsapp", content=raw, headers=headers,
                          timeout=30)

    def telegram_sent_to(self, chat_id: int) -> list[dict[str, Any]]:
        return [p for p in self.telegram.sent() if str(p.get("chat_id")) == str(chat_id)]

    def whatsapp_sent_to(self, wa_id: str) -> list[dict[str, Any]]:
        return [m for m in self.graph.messages() if m and m.get("to") == wa_id]


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


def first_line(name: str) -> str:
    return Content.load().render(name).splitlines()[0]


def visible(params: dict[str, Any]) -> str:
    return html.unescape(str(params.get("text", "")))


@contextlib.contextmanager
def deployment(name: str, tmp: Path, *, database_url: str, redis: RedisServer | None,
               polling: bool = False) -> Iterator[Deployment]:
    telegram = tg.TelegramStub(TG_TOKEN)
    graph = wa.GraphStub()
    with serve(telegram.app) as tg_url, serve(graph.app) as wa_url:
        port = free_port()
        env = {
            **os.environ,
            "GARDA_HOST": "127.0.0.1",
            "GARDA_PORT": str(port),
            "GARDA_DATABASE_URL": database_url,
            "GARDA_TELEGRAM_TOKEN": TG_TOKEN,
            "GARDA_TELEGRAM_API_URL": tg_url,
            "GARDA_WHATSAPP_TOKEN": wa.TOKEN,
            "GARDA_WHATSAPP_PHONE_NUMBER_ID": wa.PHONE_NUMBER_ID,
            "GARDA_WHATSAPP_APP_SECRET": wa.APP_SECRET,
            "GARDA_WHATSAPP_VERIFY_TOKEN": wa.VERIFY_TOKEN,
            "GARDA_WHATSAPP_API_URL": f"{wa_url}/{wa.API_VERSION}",
            # Faster than Telegram's 1/s per chat, so that ordering tests take seconds;
            # the limiter itself is tested at the real rates in test_telegram_channel.py.
            "GARDA_TELEGRAM_CHAT_RATE": "5",
        }
        for key in ("GARDA_REDIS_URL", "GARDA_PUBLIC_URL", "GARDA_TELEGRAM_WEBHOOK_SECRET",
                    "GARDA_SECRETS_FILE"):
            env.pop(key, None)
        if redis is not None:
            env["GARDA_REDIS_URL"] = redis.url
        if not polling:
            env["GARDA_PUBLIC_URL"] = "https://garda.sukamajukota.go.id"
            env["GARDA_TELEGRAM_WEBHOOK_SECRET"] = TG_SECRET
        log = tmp / f"garda-{name}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run"], cwd=ROOT,
                                    env=env, stdout=sink, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"garda run exited: {log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            return False

        try:
            wait_for(ready, timeout=300, what="garda run to be ready")
            yield Deployment(name, url, database_url, telegram, graph, proc, log, redis)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module", params=["embedded", pytest.param(
    "servers", marks=pytest.mark.servers)])
def garda(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          trained_model: Path) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp(f"gateway-{request.param}")
    if request.param == "embedded":
        with deployment("embedded", tmp, database_url=f"sqlite:///{tmp / 'garda.db'}",
                        redis=None) as running:
            yield running
        return
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    redis = RedisServer()
    redis.start()
    try:
        with deployment("servers", tmp, database_url=postgres.create_database(),
                        redis=redis) as running:
            yield running
    finally:
        redis.cleanup()


# -- Telegram ---------------------------------------------------------------------------


def test_telegram_webhook_was_registered_with_its_secret(garda: Deployment) -> None:
    hook = garda.telegram.webhook
    assert hook.url == "https://garda.sukamajukota.go.id/webhooks/telegram"
    assert hook.secret_token == TG_SECRET
    assert set(hook.allowed_updates or []) >= {"message", "callback_query"}


def test_telegram_question_is_answered_with_approved_text(garda: Deployment) -> None:
    response = garda.post_telegram(tg.text_update(1001, 501, KTP_QUESTION))
    assert response.status_code == 200
    sent = wait_for(lambda: garda.telegram_sent_to(501), what="the reply")
    assert first_line("utter_faq/ktp_baru") in visible(sent[0])
    assert sent[0]["parse_mode"] == "HTML"


def test_telegram_forged_or_missing_secret_is_refused_and_nothing_stored(
        garda: Deployment) -> None:
    for secret in (None, "wrong-secret", TG_SECRET[:-1], ""):
        response = garda.post_telegram(tg.text_update(1002, 502, KTP_QUESTION), secret=secret)
        assert response.status_code == 403
    time.sleep(1.0)
    assert garda.inbound("telegram", "1002") == 0
    assert garda.telegram_sent_to(502) == []


def test_telegram_button_press_is_acknowledged_and_answered(garda: Deployment) -> None:
    response = garda.post_telegram(tg.callback_update(1003, 503, "/faq/kartu_keluarga",
                                                      query_id="q-1003"))
    assert response.status_code == 200
    sent = wait_for(lambda: garda.telegram_sent_to(503), what="the reply")
    assert first_line("utter_faq/kartu_keluarga") in visible(sent[0])
    answered = [c.params for c in garda.telegram.calls_to("answerCallbackQuery")]
    assert {"callback_query_id": "q-1003"}.items() <= next(
        p for p in answered if p.get("callback_query_id") == "q-1003").items()


def test_telegram_photo_gets_the_text_only_reply(garda: Deployment) -> None:
    assert garda.post_telegram(tg.media_update(1004, 504, "photo")).status_code == 200
    sent = wait_for(lambda: garda.telegram_sent_to(504), what="the reply")
    assert first_line("utter_media") in visible(sent[0])


def test_telegram_group_answers_only_when_mentioned_or_replied_to(garda: Deployment) -> None:
    group = -100505
    chatter = garda.post_telegram(tg.text_update(1005, group, "wkwk ktp ku ilang",
                                                 chat_type="supergroup"))
    assert chatter.status_code == 200
    mention = garda.post_telegram(tg.text_update(
        1006, group, f"@GardaSukamajuBot {KTP_QUESTION}", chat_type="supergroup",
        message_id=77))
    assert mention.status_code == 200
    sent = wait_for(lambda: garda.telegram_sent_to(group), what="the reply")
    time.sleep(1.0)
    assert len(garda.telegram_sent_to(group)) == 1
    assert garda.inbound("telegram", "1005") == 0
    assert sent[0]["reply_parameters"]["message_id"] == 77


def test_a_429_is_waited_out_and_the_reply_sent_once(garda: Deployment) -> None:
    garda.telegram.fail_next("sendMessage", status=429, retry_after=1)
    started = time.monotonic()
    assert garda.post_telegram(tg.text_update(1007, 507, KTP_QUESTION)).status_code == 200
    wait_for(lambda: garda.telegram_sent_to(507), what="the reply")
    attempts = [c for c in garda.telegram.calls_to("sendMessage")
                if str(c.params.get("chat_id")) == "507"]
    time.sleep(1.0)
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.0
    assert len(garda.telegram_sent_to(507)) == 1
    assert time.monotonic() - started < 30


# -- WhatsApp ---------------------------------------------------------------------------


def test_whatsapp_verification_handshake(garda: Deployment) -> None:
    ok = httpx.get(f"{garda.url}/webhooks/whatsapp", params={
        "hub.mode": "subscribe", "hub.verify_token": wa.VERIFY_TOKEN,
        "hub.challenge": "1158201444"})
    assert ok.status_code == 200 and ok.text == "1158201444"
    for params in ({"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
                   {"hub.mode": "unsubscribe", "hub.verify_token": wa.VERIFY_TOKEN,
                    "hub.challenge": "1"}, {}):
        assert httpx.get(f"{garda.url}/webhooks/whatsapp", params=params).status_code == 403


def test_whatsapp_message_is_answered_and_its_delivery_recorded(garda: Deployment) -> None:
    citizen = "6281200000601"
    assert garda.post_whatsapp(wa.text_message(citizen, KTP_QUESTION)).status_code == 200
    sent = wait_for(lambda: garda.whatsapp_sent_to(citizen), what="the reply")
    body = sent[0]
    shown = body.get("text", {}).get("body") or body.get("interactive", {}).get("body", {}).get(
        "text", "")
    assert first_line("utter_faq/ktp_baru") in shown
    wamid = wait_for(lambda: garda.sql(
        "SELECT o.platform_message_id FROM outbox o JOIN conversations c "
        "ON c.id = o.conversation_id WHERE c.chat_id = :w AND o.status = 'sent'", w=citizen),
        what="the sent row")[0][0]
    for status in ("sent", "delivered", "read"):
        response = garda.post_whatsapp(wa.status_update(wamid, status, citizen))
        assert response.status_code == 200
    assert garda.sql("SELECT delivery_status FROM outbox WHERE platform_message_id = :m",
                     m=wamid)[0][0] == "read"


def test_a_forwarded_hoax_gets_its_clarification_and_is_counted(garda: Deployment) -> None:
    from bot.hoax.registry import Registry

    citizen = "6281200000612"
    chain = ("*PENTING!!* Vaksin booster terbaru katanya ada MICROCHIP 5G, lengan bisa nempel "
             "magnet 🧲🧲 sudah dibuktikan banyak orang!! SEBARKAN ke semua grup keluarga!!!")
    assert garda.post_whatsapp(wa.text_message(citizen, chain)).status_code == 200
    sent = wait_for(lambda: garda.whatsapp_sent_to(citizen), what="the clarification")
    entry = Registry.load().entries["vaksin-microchip-magnet"]
    shown = sent[0].get("text", {}).get("body", "")
    assert shown.startswith(f"[HOAKS] {entry.title}") and entry.sources[0].url in shown
    assert garda.sql("SELECT i.route, i.hoax_id FROM inbound i JOIN conversations c "
                     "ON c.id = i.conversation_id WHERE c.chat_id = :w", w=citizen) == [
        ("hoax", "vaksin-microchip-magnet")]
    assert garda.sql("SELECT hoax_id, matches FROM hoax_daily") == [
        ("vaksin-microchip-magnet", 1)]


def test_an_unknown_forwarded_claim_gets_the_holding_reply(garda: Deployment) -> None:
    citizen = "6281200000613"
    chain = ("INFO PENTING!!! Jembatan Merah Sukamaju akan ditutup total mulai besok selama "
             "6 bulan, semua kendaraan dialihkan. Tolong sebarkan ke grup RT/RW!!")
    assert garda.post_whatsapp(wa.text_message(citizen, chain)).status_code == 200
    sent = wait_for(lambda: garda.whatsapp_sent_to(citizen), what="the holding reply")
    assert first_line("utter_fact_check") in sent[0].get("text", {}).get("body", "")
    assert garda.sql("SELECT i.route, i.category FROM inbound i JOIN conversations c "
                     "ON c.id = i.conversation_id WHERE c.chat_id = :w", w=citizen) == [
        ("escalate", "fact_check")]


def test_whatsapp_bad_or_missing_signature_is_refused_and_nothing_stored(
        garda: Deployment) -> None:
    citizen = "6281200000602"
    body = wa.text_message(citizen, KTP_QUESTION)
    for signature in (None, "sha256=" + "0" * 64, wa.sign(b"{}"), "md5=abc"):
        assert garda.post_whatsapp(body, signature=signature).status_code == 403
    time.sleep(1.0)
    assert garda.sql("SELECT count(*) FROM conversations WHERE chat_id = :w", w=citizen)[0][0] == 0
    assert garda.whatsapp_sent_to(citizen) == []


def test_whatsapp_media_and_button_reply(garda: Deployment) -> None:
    citizen = "6281200000603"
    assert garda.post_whatsapp(wa.media_message(citizen, "image")).status_code == 200
    assert garda.post_whatsapp(wa.button_reply(citizen, "/faq/akta_kelahiran")).status_code == 200
    sent = wait_for(lambda: len(garda.whatsapp_sent_to(citizen)) >= 2 and
                    garda.whatsapp_sent_to(citizen), what="two replies")
    texts = [m.get("text", {}).get("body", "") for m in sent]
    assert first_line("utter_media") in texts[0]
    assert first_line("utter_faq/akta_kelahiran") in texts[1]


# -- both: replays, bursts, order, bad input --------------------------------------------


def test_the_same_update_five_times_in_a_row_and_at_once_is_answered_once(
        garda: Deployment) -> None:
    update = tg.text_update(1008, 508, KTP_QUESTION)
    for _ in range(5):
        assert garda.post_telegram(update).status_code == 200
    message = wa.text_message("6281200000604", KTP_QUESTION)
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        codes = list(pool.map(lambda _: garda.post_whatsapp(message).status_code, range(5)))
    assert codes == [200] * 5
    wait_for(lambda: garda.telegram_sent_to(508) and garda.whatsapp_sent_to("6281200000604"))
    time.sleep(1.5)
    assert garda.inbound("telegram", "1008") == 1
    assert len(garda.telegram_sent_to(508)) == 1
    assert len(garda.whatsapp_sent_to("6281200000604")) == 1


def test_twenty_messages_from_one_sender_are_answered_in_order_while_others_proceed(
        garda: Deployment) -> None:
    busy, other = 509, 510
    updates = [tg.text_update(1100 + i, busy, f"{KTP_QUESTION} {i}") for i in range(20)]
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(lambda u: garda.post_telegram(u).status_code, updates))
        assert garda.post_telegram(tg.text_update(1200, other, KTP_QUESTION)).status_code == 200
    assert codes == [200] * 20
    wait_for(lambda: len(garda.telegram_sent_to(busy)) == 20, timeout=120, what="20 replies")
    # The stub records a call before Garda stores the platform's message id: wait for both.
    rows = wait_for(lambda: (r := garda.sql(
        "SELECT i.id, o.platform_message_id FROM inbound i JOIN outbox o ON o.inbound_id = i.id"
        " WHERE i.channel = 'telegram' AND i.platform_id LIKE '11%' AND o.method = 'sendMessage'"
        " AND o.platform_message_id IS NOT NULL ORDER BY i.id")) and len(r) == 20 and r,
        what="20 sent rows")
    assert len(rows) == 20
    sent_order = [int(message_id) for _, message_id in rows]
    assert sent_order == sorted(sent_order), "replies left in a different order than arrival"
    # The other citizen did not wait behind the busy conversation.
    other_reply = wait_for(lambda: garda.telegram_sent_to(other), what="the other reply")
    calls = garda.telegram.calls_to("sendMessage")
    at = {id(c.params): c.at for c in calls}
    busy_times = sorted(c.at for c in calls if str(c.params.get("chat_id")) == str(busy))
    assert at[id(other_reply[0])] < busy_times[-1]


def test_bad_bodies_get_a_clear_4xx_and_nothing_is_stored(garda: Deployment) -> None:
    before = garda.inbound("telegram")
    cases = [
        (b"{not json", "application/json", 400),
        (json.dumps(tg.text_update(1300, 511, "halo")).encode(), "text/plain", 415),
        (b'{"update_id": 1301, "message": {"text": "' + b"a" * 600_000 + b'"}}',
         "application/json", 413),
        (json.dumps({"update_id": 1302, "poll": {"id": "1"}}).encode(), "application/json", 422),
        (json.dumps([1, 2, 3]).encode(), "application/json", 422),
        (b"\xff\xfe\x00binary", "application/json", 400),
    ]
    for body, content_type, status in cases:
        response = garda.post_telegram(None, content=body, content_type=content_type)
        assert response.status_code == status, (content_type, body[:40])
        assert response.json()["ok"] is False and response.json()["error"]
    huge = wa.text_message("6281200000605", "x" * 600_000)
    assert garda.post_whatsapp(huge).status_code == 413
    assert garda.post_whatsapp({"object": "page", "entry": []}).status_code == 422
    assert garda.inbound("telegram") == before
    assert httpx.get(f"{garda.url}/healthz").status_code == 200
    assert httpx.get(f"{garda.url}/readyz").status_code == 200


def test_metrics_count_traffic_without_personal_data(garda: Deployment) -> None:
    body = httpx.get(f"{garda.url}/metrics").text
    assert 'garda_messages_in_total{channel="telegram"}' in body
    assert 'garda_webhooks_rejected_total{channel="telegram",reason="secret"}' in body
    assert "garda_reply_seconds_bucket" in body and "garda_queue_depth" in body
    assert "628120000" not in body and "ktp" not in body.lower().replace("garda_", "")


def test_redis_stopped_mid_conversation_loses_nothing_and_doubles_nothing(
        garda: Deployment) -> None:
    if garda.redis is None:
        pytest.skip("embedded deployment: its in-process queue cannot stop apart from Garda")
    chat = 520
    assert garda.post_telegram(tg.text_update(1400, chat, KTP_QUESTION)).status_code == 200
    wait_for(lambda: garda.telegram_sent_to(chat), what="the first reply")
    garda.redis.stop()
    try:
        retried = garda.post_telegram(tg.text_update(1401, chat, "cara bikin kk"))
        dropped = garda.post_telegram(tg.text_update(1402, chat, "akta kelahiran anak"))
        assert retried.status_code == 503 and dropped.status_code == 503
        ready = httpx.get(f"{garda.url}/readyz")
        assert ready.status_code == 503 and ready.json()["queue"].startswith("down")
    finally:
        garda.redis.start()
    # Telegram delivers 1401 again; 1402 it does not (as if it had given up): the row kept
    # before the 503 is found in SQL and answered anyway.
    assert garda.post_telegram(tg.text_update(1401, chat, "cara bikin kk")).status_code == 200
    wait_for(lambda: len(garda.telegram_sent_to(chat)) >= 3, timeout=60, what="three replies")
    time.sleep(2.0)
    assert len(garda.telegram_sent_to(chat)) == 3
    assert garda.sql("SELECT count(*) FROM inbound WHERE platform_id IN ('1400','1401','1402')"
                     )[0][0] == 3


def test_logs_hold_no_tokens_secrets_or_phone_numbers(garda: Deployment) -> None:
    log = garda.log.read_text(errors="replace")
    for secret in (TG_TOKEN, TG_TOKEN.split(":")[1], TG_SECRET, wa.TOKEN, wa.APP_SECRET,
                   wa.VERIFY_TOKEN, "6281200000601", KTP_QUESTION):
        assert secret not in log


# -- long polling -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def polling(tmp_path_factory: pytest.TempPathFactory, trained_model: Path
            ) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("gateway-polling")
    with deployment("polling", tmp, database_url=f"sqlite:///{tmp / 'garda.db'}",
                    redis=None, polling=True) as running:
        yield running


def test_long_polling_answers_without_a_public_url(polling: Deployment) -> None:
    polling.telegram.push_update(tg.text_update(2001, 601, KTP_QUESTION))
    polling.telegram.push_update(tg.text_update(2002, 601, "makasih min"))
    sent = wait_for(lambda: len(polling.telegram_sent_to(601)) >= 2 and
                    polling.telegram_sent_to(601), what="two replies")
    assert first_line("utter_faq/ktp_baru") in visible(sent[0])
    time.sleep(2.0)  # more polls: an update already stored is not taken again
    assert len(polling.telegram_sent_to(601)) == 2
    assert polling.telegram.webhook.url == ""
    # Without a webhook secret, the webhook endpoint accepts nothing.
    assert polling.post_telegram(tg.text_update(2003, 601, "halo"), secret="").status_code == 403
