"""`garda run` with no channel configured: the local terminal chat, end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.content import Content

ROOT = Path(__file__).resolve().parent.parent


def _garda(*args: str, stdin: str = "", env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], cwd=ROOT, input=stdin, text=True,
        capture_output=True, timeout=600, check=False, env={**os.environ, **(env or {})},
    )


@pytest.mark.model
def test_run_starts_the_local_chat_and_answers_in_order(trained_model: Path) -> None:
    content = Content.load()
    result = _garda("run", stdin="assalamualaikum min\nmin mau tanya cara bikin ktp gmn ya\n🙏\n")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    greet = content.render("utter_greet").splitlines()[0]
    ktp = content.render("utter_faq/ktp_baru").splitlines()[0]
    empty = content.render("utter_empty").splitlines()[0]
    assert greet in out and ktp in out and empty in out
    assert out.index(greet) < out.index(ktp) < out.index(empty)


def test_a_typed_number_picks_the_offered_button(tmp_path: Path) -> None:
    from bot.brain.pipeline import Brain
    from bot.brain.ranking import Routed
    from bot.cli import chat_loop
    from bot.config import Settings

    class Ambiguous:
        async def parse_message(self, text: str) -> dict:
            routed = Routed("clarify", "faq/ktp_baru", 0.4,
                            options=(("faq/ktp_baru", 0.4), ("faq/ktp_hilang_rusak", 0.35)))
            return {"garda": routed.as_dict()}

    content = Content.load()
    typed = iter(["ktp", "2"])

    def read(prompt: str) -> str:
        try:
            return next(typed)
        except StopIteration:
            raise EOFError from None

    shown: list[str] = []
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'chat.db'}")
    chat_loop(Brain(Ambiguous(), content), read, shown.append, settings)
    screen = "\n".join(shown)
    assert "[2] " + content.title("utter_faq/ktp_hilang_rusak") in screen
    # The typed "2" went through the gateway path as a button press, and was answered.
    assert content.render("utter_faq/ktp_hilang_rusak").splitlines()[0] in screen
    from sqlalchemy import create_engine, text

    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        kinds = [r[0] for r in conn.execute(text("SELECT kind FROM inbound ORDER BY id"))]
        sent = conn.execute(text("SELECT count(*) FROM outbox WHERE status = 'sent'")).scalar()
    assert kinds == ["text", "button"] and sent == 2
    answer = content.render("utter_faq/ktp_hilang_rusak").splitlines()[0]
    assert answer in screen.split("[3]", 1)[1]  # answered after the buttons were shown


def test_run_refuses_an_unsafe_or_incomplete_channel_configuration() -> None:
    token = "123456:AAsecret-token-value-0000000000"
    unsafe = _garda("run", env={"GARDA_TELEGRAM_TOKEN": token,
                                "GARDA_PUBLIC_URL": "https://garda.example.go.id",
                                "GARDA_TELEGRAM_WEBHOOK_SECRET": ""})
    assert unsafe.returncode == 2
    assert "GARDA_TELEGRAM_WEBHOOK_SECRET" in unsafe.stderr
    incomplete = _garda("run", env={"GARDA_WHATSAPP_TOKEN": token})
    assert incomplete.returncode == 2
    assert "GARDA_WHATSAPP_APP_SECRET" in incomplete.stderr
    alone = _garda("run", "--role", "worker", env={"GARDA_REDIS_URL": ""})
    assert alone.returncode == 2 and "GARDA_REDIS_URL" in alone.stderr
    for result in (unsafe, incomplete, alone):
        assert token not in result.stderr + result.stdout
